#!/usr/bin/env bash
# PostgreSQL mode: authorization-code exchange and refresh rotation per second (p50/p99)
# against the release server with `--store postgres://...`, PostgreSQL 15 on this machine
# (started from /usr/lib/postgresql/15/bin on a throwaway cluster), plus the bytes of table
# + index per active refresh token and the server's RSS.
#
#   make bench-postgres            # 10 s per phase, 32 concurrent clients
#   SECONDS_PER_PHASE=30 CONCURRENCY=64 make bench-postgres
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORT=${PORT:-18933}

build_release
load_bin=$(bench_bin store_load)

bench_work
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
stop_postgres() { "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true; }
cleanup_hooks+=(stop_postgres)
"${as_pg[@]}" "$PG_BIN/initdb" -D "$work/pg" -U inbound --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $work -c max_connections=100" start >/dev/null
store="postgres://inbound@127.0.0.1:$pg_port/postgres"

mkdir -p "$work/data"
INBOUND_LOG=warn "$INBOUND_BIN" serve --config examples/quickstart \
  --data-dir "$work/data" --listen "127.0.0.1:$PORT" --store "$store" >"$work/out" 2>"$work/err" &
server_pid=$!
wait_ready inbound "http://127.0.0.1:$PORT/readyz" "$work/err"
idle=$(rss)

INBOUND_BENCH_BASE="http://127.0.0.1:$PORT" INBOUND_BENCH_STORE="$store" \
INBOUND_BENCH_CLIENT_ID=$(client_id billing-cli) \
INBOUND_BENCH_SECONDS=${SECONDS_PER_PHASE:-10} INBOUND_BENCH_CONCURRENCY=${CONCURRENCY:-32} "$load_bin"
printf 'server RSS: idle %s, after load %s\n' "$idle" "$(rss)"
