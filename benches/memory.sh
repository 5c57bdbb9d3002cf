#!/usr/bin/env bash
# Server memory per live token (issue #17): the release server's RSS idle, then its growth
# per 100k opaque access tokens (issued, then introspected once each: the memo of verified
# tokens holds their rows, at most 100k), and per 100k refresh tokens (code exchanges), on
# SQLite and on PostgreSQL (a throwaway cluster from /usr/lib/postgresql/15/bin). Tokens
# themselves live in the store; what the server keeps is bounded caches. The driver is
# benches/memory.rs. Server on CPU 0 with one runtime worker, the driver on CPU 1.
#
#   make bench-memory
#   TOKENS=20000 STORES=sqlite make bench-memory   # a smoke run
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TOKENS=${TOKENS:-100000}
STORES=${STORES:-sqlite postgres}
PORT=${PORT:-18961}
PG_PORT=${PG_PORT:-18962}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

build_release
memory_bin=$(bench_bin memory)
[ -x "$memory_bin" ] || die "the memory bench did not build"

bench_work
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
pg_stop() { [ -d "$work/pg" ] && "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true; }
cleanup_hooks+=(pg_stop)
cp -r examples/quickstart "$work/config"
# Opaque tokens that outlive the run (no purge while measuring).
cat >"$work/config/bench-memory.yaml" <<YAML
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: bench-opaque, namespace: default}
spec:
  displayName: Bench opaque
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: client_secret_basic
  tokens: {format: opaque, accessTokenLifetime: 1h}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: bench-opaque, namespace: default}
spec:
  subject: {kind: InboundApp, name: bench-opaque}
  scopes: [billing:read]
  resources: ["https://billing.example.com"]
YAML

for store in $STORES; do
  rm -rf "$work/data"
  case $store in
    sqlite)
      store_url="$work/data/state.db"
      start_inbound "$PORT" "$work/err"
      ;;
    postgres)
      [ -x "$PG_BIN/initdb" ] || apt_install postgresql-15
      rm -rf "$work/pg"
      "${as_pg[@]}" "$PG_BIN/initdb" -D "$work/pg" -U inbound --auth=trust -E UTF8 >/dev/null
      "${as_pg[@]}" taskset -c 0 "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $work" start >/dev/null
      store_url="postgres://inbound@127.0.0.1:$PG_PORT/postgres"
      INBOUND_STORE=$store_url start_inbound "$PORT" "$work/err"
      ;;
    *) die "unknown store $store (sqlite or postgres)" ;;
  esac
  wait_ready "inbound ($store)" "http://127.0.0.1:$PORT/readyz" "$work/err"
  printf '\n%s, %s tokens per phase:\n\n' "$store" "$TOKENS"
  INBOUND_BENCH_BASE="http://127.0.0.1:$PORT" INBOUND_BENCH_PID=$server_pid INBOUND_BENCH_STORE=$store_url \
    INBOUND_BENCH_OPAQUE=$(client_basic bench-opaque) INBOUND_BENCH_CLIENT_ID=$(client_id billing-cli) \
    INBOUND_BENCH_TOKENS=$TOKENS taskset -c 1 "$memory_bin" || { tail -n 20 "$work/err" >&2; die "the memory bench failed on $store"; }
  stop_server
  pg_stop
done
