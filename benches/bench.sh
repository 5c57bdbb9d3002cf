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
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10s}
PORT=${PORT:-18931}

need wrk

build_release
sign_bin=$(bench_bin sign_rate)
verify_bin=$(bench_bin verify_rate)

bench_work

# The quickstart plus an app trusting a CI issuer whose key is made here.
issuer="http://127.0.0.1:$PORT"
cp -r examples/quickstart "$work/config"
verify_rate=$(taskset -c 0 "$verify_bin" https://ci.example.com "$issuer" "$work" | awk '/verify_rate/ {print $2}')
ci_deployer_manifests "$work" >"$work/config/bench.yaml"

start_inbound "$PORT" "$work/err"
wait_ready inbound "http://127.0.0.1:$PORT/readyz" "$work/err"
idle_rss=$(rss)

basic=$(client_basic billing-agent)
# Introspection rotates over 200 distinct tokens, as an API sees many callers.
for _ in $(seq 200); do
  curl -s -H "Authorization: Basic $basic" -d grant_type=client_credentials "http://127.0.0.1:$PORT/token" |
    python3 -c 'import json,sys; print("\"" + json.load(sys.stdin)["access_token"] + "\",")'
done >"$work/tokens.lua"

ci_basic=$(client_basic ci-deployer)

post_lua "grant_type=client_credentials&scope=billing:read" "$basic" >"$work/cc.lua"
post_lua "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=$(cat "$work/assertion")" "$ci_basic" >"$work/jwt-bearer.lua"
introspect_lua "$basic" "$work/tokens.lua" >"$work/introspect.lua"

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
