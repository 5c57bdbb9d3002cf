#!/usr/bin/env bash
# A Python venv with the official MCP Python SDK (PyPI `mcp`), for the MCP authorization
# integration tests: tests/mcp/mcp_client.py drives the SDK's own OAuth client provider
# against inbound and an MCP server. Idempotent: with a working venv in place it only checks
# it (well under a second); a missing or broken venv is recreated.
#
# The pin is the newest 1.x release: its newest protocol revision is 2025-11-25 (the one the
# tests target), its HTTP stack is httpx, and it supports Client ID Metadata Documents.
set -euo pipefail

venv=${INBOUND_MCP_VENV:-$HOME/.cache/inbound/mcp-venv}
version=1.30.0

works() {
  [ -x "$venv/bin/python" ] &&
    (cd / && "$venv/bin/python" -c "
import importlib.metadata, sys
import mcp
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
import httpx
sys.exit(importlib.metadata.version('mcp') != '$version')
") >/dev/null 2>&1
}

works && exit 0

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "mcp-env: installing python3-venv"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi

echo "mcp-env: creating $venv (mcp==$version)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==$version"
works || { echo "mcp-env: mcp $version does not load in $venv" >&2; exit 1; }
echo "mcp-env: ready ($venv/bin/python)"
