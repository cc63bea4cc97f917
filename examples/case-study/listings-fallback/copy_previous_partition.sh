#!/usr/bin/env bash
# Copy the newest earlier listings partition to the logical date, so consumers keep going.
set -euo pipefail
date="${DPC_LOGICAL_DATE:0:10}"
base="$DPC_DATA_DIR/listings"
prev=$(ls -1d "$base"/date=* 2>/dev/null | sed 's/.*date=//' | awk -v d="$date" '$0 < d' | sort | tail -1 || true)
if [ -z "$prev" ]; then
  echo "no earlier listings partition to reuse for $date"
  exit 0
fi
rm -rf "$base/date=$date"
cp -r "$base/date=$prev" "$base/date=$date"
echo "reused listings of $prev for $date"
