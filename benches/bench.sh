#!/usr/bin/env bash
# Throughput and latency of the release server, driven over keep-alive HTTP by wrk from a
# second process. The server is pinned to CPU 0 with one runtime worker, wrk to CPU 1.
# Reports, for client_credentials (ES256 JWT) and introspection, requests/s, p50 and p99 at
# 1, 16 and 64 connections; the server's RSS idle and after load; and, in the same run, the
# raw single-core ES256 signing rate of this machine.
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
sign_bin=$(cargo bench --locked --bench sign_rate --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("target",{}).get("name")=="sign_rate" and m.get("executable"):
        print(m["executable"])')

work=$(mktemp -d)
cleanup() { [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

INBOUND_WORKER_THREADS=1 INBOUND_LOG=warn taskset -c 0 "$CARGO_TARGET_DIR/release/inbound" serve \
  --config examples/quickstart --data-dir "$work/data" --listen "127.0.0.1:$PORT" >"$work/out" 2>"$work/err" &
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

lua() { # $1 body
  cat <<LUA
wrk.method = "POST"
wrk.body = "$1"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.0f %.3f %.3f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
}
lua "grant_type=client_credentials&scope=billing:read" >"$work/cc.lua"
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
for endpoint in token introspect; do
  script="$work/cc.lua"; [ "$endpoint" = introspect ] && script="$work/introspect.lua"
  for c in 1 16 64; do
    line=$(taskset -c 1 wrk -t1 -c"$c" -d"$DURATION" -s "$script" "http://127.0.0.1:$PORT/$endpoint" | grep '^RESULT')
    read -r _ total errors rps p50 p99 <<<"$line"
    printf '| /%s | %d | %s | %s | %s | %s |\n' "$endpoint" "$c" "$rps" "$p50" "$p99" "$errors"
  done
done
loaded_rss=$(rss)
printf '\nraw ES256 signing rate, one core: %s signatures/s\n' "$sign_rate"
printf 'server RSS: idle %s, after load %s\n' "$idle_rss" "$loaded_rss"
