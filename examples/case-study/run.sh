#!/usr/bin/env bash
# The case study end to end on the local runtime: both parents run, pipeline-x starts
# only after both succeed, metric X is printed with the timeline of runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
date="${1:-2026-11-26}"
dpc="${DPC:-dpc}"
rm -rf "$here/.dpc"
"$dpc" validate "$here"
"$dpc" local start listings --date "$date" -w "$here"
"$dpc" local start searches --date "$date" -w "$here"
"$dpc" local up --until-idle --no-schedule -w "$here"
echo
echo "== timeline"
"$dpc" local timeline -w "$here"
echo
echo "== status for $date"
"$dpc" local status --date "$date" -w "$here"
echo
metric="$here/.dpc/data/pipeline-x/date=$date/metric_x.json"
if [ ! -f "$metric" ]; then
  echo "metric X was not produced: see \`$dpc local runs -w $here\` and \`$dpc local logs RUN -w $here\`" >&2
  exit 1
fi
echo "== metric X for $date"
"${PYTHON:-python3}" -c "import json,sys; m=json.load(open(sys.argv[1])); print('X =', m['x']); [print('  %-10s x=%s' % (c['city'], c['x'])) for c in m['by_city']]" "$metric"
