#!/usr/bin/env bash
# The whole test suite (what README's test command and CI run).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q -p no:cacheprovider "$@"
