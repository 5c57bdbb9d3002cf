#!/usr/bin/env bash
# A Python venv with Helm's own template engine (PyPI helm-python-sdk: libhelm_c.so behind a
# Python API), so that scripts/helm.py renders and lints charts/inbound without a helm binary.
# See ../shared/notes/test-infrastructure.md. Idempotent: with a working venv in place it
# only checks it (well under a second); a missing or broken venv is recreated.
set -euo pipefail

venv=${INBOUND_HELM_VENV:-$HOME/.cache/inbound/helm-venv}
version=0.2.2

works() {
  [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "
import importlib.metadata, sys
from helm_python.chart import Chart, lint
sys.exit(importlib.metadata.version('helm-python-sdk') != '$version')
" >/dev/null 2>&1
}

works && exit 0

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "helm-env: installing python3-venv"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi

echo "helm-env: creating $venv (helm-python-sdk==$version)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "helm-python-sdk==$version"
works || { echo "helm-env: helm-python-sdk $version does not load in $venv" >&2; exit 1; }
