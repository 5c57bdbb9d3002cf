#!/usr/bin/env bash
# Throughput and latency of the release server, driven over keep-alive HTTP by wrk from a
# second process. The server is pinned to CPU 0 with one runtime worker, wrk to CPU 1.
# Reports, for client_credentials (ES256 JWT), introspection and the JWT bearer grant (a
# trusted issuer's ES256 assertion verified, an ES256 token signed), requests/s, p50 and p99
# at 1, 16 and 64 connections; the server's RSS idle and after load; and, in the same run,
# the raw single-core ES256 signing and verification rates of this machine (the floors).
#
#   make bench                 # 10 s per point
#   DURATION=30s make bench
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/inbound/target}"
export CARGO_TARGET_DIR
DURATION=${DURATION:-10s}
PORT=${PORT:-18931}

if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk
fi

cargo build --release --locked --quiet
bench_bin() { # $1: bench target
  cargo bench --locked --bench "$1" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("target",{}).get("name")==sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
}
sign_bin=$(bench_bin sign_rate)
verify_bin=$(bench_bin verify_rate)

work=$(mktemp -d)
cleanup() { [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# The quickstart plus an app trusting a CI issuer whose key is made here.
issuer="http://127.0.0.1:$PORT"
cp -r examples/quickstart "$work/config"
verify_rate=$(taskset -c 0 "$verify_bin" https://ci.example.com "$issuer" "$work" | awk '/verify_rate/ {print $2}')
cat >"$work/config/bench.yaml" <<YAML
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: ci-deployer, namespace: default}
spec:
  displayName: CI deployer
  grantTypes: ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
  trustedIssuers:
    - issuer: https://ci.example.com
      jwks: '$(cat "$work/jwks.json")'
      algorithms: [ES256]
      loginClaim: repository
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: ci-deployer, namespace: default}
spec:
  subject: {kind: InboundApp, name: ci-deployer}
  scopes: [billing:read]
  resources: ["https://billing.example.com"]
YAML

INBOUND_WORKER_THREADS=1 INBOUND_LOG=warn taskset -c 0 "$CARGO_TARGET_DIR/release/inbound" serve \
  --config "$work/config" --data-dir "$work/data" --listen "127.0.0.1:$PORT" >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$server_pid/status"; }
idle_rss=$(rss)

creds="$work/data/credentials/default/billing-agent-credentials"
basic=$(printf '%s:%s' "$(cat "$creds/client_id")" "$(cat "$creds/client_secret")" | base64 -w0)
# Introspection rotates over 200 distinct tokens, as an API sees many callers.
tokens_lua=$(for _ in $(seq 200); do
  curl -s -H "Authorization: Basic $basic" -d grant_type=client_credentials "http://127.0.0.1:$PORT/token" |
    python3 -c 'import json,sys; print("\"" + json.load(sys.stdin)["access_token"] + "\",")'
done)

ci_creds="$work/data/credentials/default/ci-deployer-credentials"
ci_basic=$(printf '%s:%s' "$(cat "$ci_creds/client_id")" "$(cat "$ci_creds/client_secret")" | base64 -w0)

lua() { # $1 body, $2 Basic credentials (default: billing-agent's)
  cat <<LUA
wrk.method = "POST"
wrk.body = "$1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic ${2:-$basic}"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.0f %.3f %.3f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
}
lua "grant_type=client_credentials&scope=billing:read" >"$work/cc.lua"
lua "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=$(cat "$work/assertion")" "$ci_basic" >"$work/jwt-bearer.lua"
lua "" >"$work/introspect.lua"
cat >>"$work/introspect.lua" <<LUA
tokens = { $tokens_lua }
i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format(nil, nil, nil, "token=" .. tokens[i])
end
LUA

sign_rate=$(taskset -c 0 "$sign_bin" | awk '/sign_rate/ {print $2}')

printf '\n| endpoint | connections | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|\n'
for scenario in token introspect jwt-bearer; do
  case $scenario in
    token) script="$work/cc.lua" path=token ;;
    introspect) script="$work/introspect.lua" path=introspect ;;
    jwt-bearer) script="$work/jwt-bearer.lua" path=token ;;
  esac
  # Every answer must be a token: a bench of refusals measures nothing.
  check=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Basic $ci_basic" \
    --data-urlencode "assertion=$(cat "$work/assertion")" -d grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer \
    "http://127.0.0.1:$PORT/token")
  [ "$check" = 200 ] || { echo "the jwt-bearer request is refused ($check)" >&2; cat "$work/err" >&2; exit 1; }
  for c in 1 16 64; do
    line=$(taskset -c 1 wrk -t1 -c"$c" -d"$DURATION" -s "$script" "http://127.0.0.1:$PORT/$path" | grep '^RESULT')
    read -r _ total errors rps p50 p99 <<<"$line"
    label="/$path"; [ "$scenario" = jwt-bearer ] && label="/token (jwt-bearer)"
    printf '| %s | %d | %s | %s | %s | %s |\n' "$label" "$c" "$rps" "$p50" "$p99" "$errors"
  done
done
loaded_rss=$(rss)
printf '\nraw ES256 signing rate, one core: %s signatures/s\n' "$sign_rate"
printf 'raw ES256 verification rate, one core: %s verifications/s\n' "$verify_rate"
python3 -c 'import sys; s,v=map(float,sys.argv[1:]); t=1/s+1/v; print("jwt-bearer floor (one verify + one sign): %.1f us = %.0f/s" % (t*1e6, 1/t))' "$sign_rate" "$verify_rate"
printf 'server RSS: idle %s, after load %s\n' "$idle_rss" "$loaded_rss"
