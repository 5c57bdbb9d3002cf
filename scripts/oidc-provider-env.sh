#!/usr/bin/env bash
# A real upstream OpenID Provider for the federation tests: npm `oidc-provider` (the
# OpenID-certified Node implementation), installed into a cache folder. The tests start it
# with tests/upstream/provider.mjs on a free loopback port. Idempotent: with the pinned
# version in place it only checks it.
#
# It asks for Node 22 and runs on the machine's Node 20 (a warning, nothing else).
set -euo pipefail

dir=${INBOUND_OIDC_PROVIDER_DIR:-$HOME/.cache/inbound/oidc-provider}
version=9.13.3

works() {
  [ -f "$dir/node_modules/oidc-provider/package.json" ] &&
    [ "$(node -p "require('$dir/node_modules/oidc-provider/package.json').version" 2>/dev/null)" = "$version" ]
}

works && exit 0

command -v node >/dev/null || { echo "oidc-provider-env: node is required (Debian: nodejs)" >&2; exit 1; }
echo "oidc-provider-env: installing oidc-provider@$version into $dir"
rm -rf "$dir"
mkdir -p "$dir"
(cd "$dir" && echo '{"name":"inbound-upstream","private":true,"type":"module"}' > package.json &&
  npm install --silent --no-audit --no-fund --engine-strict=false "oidc-provider@$version" >/dev/null)
works || { echo "oidc-provider-env: oidc-provider $version did not install in $dir" >&2; exit 1; }
echo "oidc-provider-env: ready ($dir)"
