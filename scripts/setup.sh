#!/usr/bin/env bash
# Sets up a fresh machine for dpc development: uv, the workspace's virtualenv with every
# package (core, six plugins, central) and dev tools, and Chromium for the lineage page test.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_LINK_MODE=copy
if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "uv>=0.5"
fi
UV="uv"; command -v uv >/dev/null 2>&1 || UV="python3 -m uv"
# Bytecode compiled now, once: Python compiles a module's source on every import when no
# .pyc is there or it cannot write one (PYTHONDONTWRITEBYTECODE, read-only tree), and that
# alone costs `dpc local up` about a second before it is ready (issue 11). The workspace's
# own packages are editable installs, which uv does not compile: compileall does.
$UV sync --all-packages --frozen --quiet --compile-bytecode
.venv/bin/python -m compileall -q -j 0 dpc_core/src central/src plugins/*/src >/dev/null
if [ "${DPC_SKIP_APT:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1 \
   && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (for the lineage HTML test) ..."
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
fi
command -v java >/dev/null 2>&1 || echo "warning: no java on PATH; Spark steps need Java 17+" >&2
