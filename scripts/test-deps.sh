#!/usr/bin/env bash
# Installs the non-Rust tools the test suite drives, from Debian's packages, if missing.
set -euo pipefail

need=()
command -v curl >/dev/null || need+=(curl)
# Headless browser tests (login, consent, account pages).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# PostgreSQL server binaries: the tests start throwaway clusters from them.
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v lua5.4 >/dev/null || need+=(lua5.4)
# A real SMTP server for the email tests (Debian's module, so the system Python's).
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
# Certificates for the STARTTLS test (a private CA and the relay's certificate).
command -v openssl >/dev/null || need+=(openssl)

if ((${#need[@]})); then
  echo "installing: ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

# A real kube-apiserver + etcd (built once, cached under ~/.cache/inbound/k8s).
bash "$(dirname "$0")/k8s-test-env.sh"

# Helm's template engine in a venv (~/.cache/inbound/helm-venv), for the chart tests.
bash "$(dirname "$0")/helm-env.sh"

# The official MCP Python SDK in a venv (~/.cache/inbound/mcp-venv), for the MCP authorization tests.
bash "$(dirname "$0")/mcp-env.sh"

# A real upstream OpenID Provider (npm oidc-provider in ~/.cache/inbound/oidc-provider), for the federation tests.
bash "$(dirname "$0")/oidc-provider-env.sh"
