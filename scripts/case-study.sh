#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the case study on the local runtime: listings (Spark)
# and searches (shell) run, pipeline-x (Spark) starts only after both succeed, metric X and
# the timeline of runs with their trigger reasons are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
DPC_SKIP_APT=1 bash scripts/setup.sh
DPC="$PWD/.venv/bin/dpc" PYTHON="$PWD/.venv/bin/python" exec bash examples/case-study/run.sh "$@"
