#!/usr/bin/env bash
# PostgreSQL mode: authorization-code exchange and refresh rotation per second (p50/p99)
# against the release server with `--store postgres://...`, PostgreSQL 15 on this machine
# (started from /usr/lib/postgresql/15/bin on a throwaway cluster), plus the bytes of table
# + index per active refresh token and the server's RSS.
#
#   make bench-postgres            # 10 s per phase, 32 concurrent clients
#   SECONDS_PER_PHASE=30 CONCURRENCY=64 make bench-postgres
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/inbound/target}"
export CARGO_TARGET_DIR
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-18933}

cargo build --release --locked --quiet
load_bin=$(cargo bench --locked --bench store_load --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("target",{}).get("name")=="store_load" and m.get("executable"):
        print(m["executable"])')

work=$(mktemp -d)
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null
  "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"${as_pg[@]}" "$PG_BIN/initdb" -D "$work/pg" -U inbound --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $work -c max_connections=100" start >/dev/null
store="postgres://inbound@127.0.0.1:$pg_port/postgres"

mkdir -p "$work/data"
INBOUND_LOG=warn "$CARGO_TARGET_DIR/release/inbound" serve --config examples/quickstart \
  --data-dir "$work/data" --listen "127.0.0.1:$PORT" --store "$store" >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$server_pid/status"; }
idle=$(rss)

INBOUND_BENCH_BASE="http://127.0.0.1:$PORT" INBOUND_BENCH_STORE="$store" \
INBOUND_BENCH_CLIENT_ID=$(cat "$work/data/credentials/default/billing-cli-credentials/client_id") \
INBOUND_BENCH_SECONDS=${SECONDS_PER_PHASE:-10} INBOUND_BENCH_CONCURRENCY=${CONCURRENCY:-32} "$load_bin"
printf 'server RSS: idle %s, after load %s\n' "$idle" "$(rss)"
