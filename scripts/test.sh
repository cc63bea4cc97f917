#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
