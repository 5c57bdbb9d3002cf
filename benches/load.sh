#!/usr/bin/env bash
# The load test (issue 17): not a microbenchmark but DURATION seconds (default 300) of mixed
# traffic at a fixed rate well under capacity — client_credentials (JWT and opaque),
# introspection, the authorization code flow with a real password login, refresh rotation
# and dynamic client registration — first against one release server on SQLite, then
# against two replicas sharing one PostgreSQL 15 (a throwaway cluster started from
# /usr/lib/postgresql/15/bin), requests spread over both (codes exchanged, tokens
# introspected and refresh tokens rotated at the other replica than the one that issued
# them). The driver is benches/load.rs (open loop: requests started on a timer, see there).
# Servers and PostgreSQL on CPU 0, the driver on CPU 1.
#
# It reports per operation count, errors, p50, p99 and max; each server's RSS every 10 s;
# the store's rows per table every 30 s. It fails on any unexpected answer, and (runs of
# at least 180 s) when RSS grows more than 20% after the first minute or a table still grows
# in the second half.
#
# Why the rows stay bounded within minutes: the load apps below use short lifetimes, and
# every server purges expired rows every 5 s (src/runtime/mod.rs `maintain`: batches of
# 1000 per table, up to 10 per pass) and reaps unused registered clients:
#   opaque_tokens        access tokens of load-cc-opaque / load-portal: 30 s
#   authorization_codes  60 s (fixed): a redeemed code is marked used, not deleted (replay
#                        detection), and purged at expiry
#   pending_requests     deleted when the login completes (else 10 min)
#   sessions             --session-lifetime 1m (one per login: every flow is a new browser)
#   refresh_tokens       refreshTokenLifetime 1m from each rotation (spent ones are kept
#   refresh_families     until then, for reuse detection); a family ends 1 min after its
#                        last rotation (the driver keeps LOAD_CHAINS chains, drops the oldest)
#   registered_clients   reapAfter 1m (never used by the driver): reaped, 100 per pass
#   consents             one per user and app (4 here), 30 days: bounded by users x apps
# JWT access tokens leave no rows.
#
#   make bench-load                      # 300 s on each store
#   DURATION=30 make bench-load          # a smoke run
#   STORES=postgres make bench-load      # only the two replicas on PostgreSQL
#   RATE_CC_JWT=300 RATE_LOGIN=1 make bench-load   # rates: see benches/load.rs
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export DURATION=${DURATION:-300}
STORES=${STORES:-sqlite postgres}   # which runs, in this order
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# Free loopback ports unless told (other benches may be running on the usual ones).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=${PORT:-$(free_port)}
PORT_B=${PORT_B:-$(free_port)}
[ "$PORT_B" != "$PORT" ] || PORT_B=$((PORT + 1))

build_release
load_bin=$(bench_bin load)
work=$(mktemp -d)
# The binary just built, copied: the runs last minutes, and another build into the shared
# target directory must not swap the server between the SQLite and the PostgreSQL run.
cp "$INBOUND_BIN" "$work/inbound"
inbound="$work/inbound"
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -d "$work/pg" ] && { "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# The quickstart plus the load apps (short lifetimes, see above) and a self-registration
# policy (in its own namespace, as the integration tests do).
cp -r examples/quickstart "$work/config"
cat >"$work/config/load.yaml" <<'YAML'
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: load-cc-jwt, namespace: default}
spec:
  displayName: Load JWT service
  clientType: confidential
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: client_secret_basic
  allowedResources: ["https://billing.example.com"]
  tokens: {accessTokenLifetime: 1m}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: load-cc-jwt, namespace: default}
spec:
  subject: {kind: InboundApp, name: load-cc-jwt}
  scopes: [billing:read]
  resources: ["https://billing.example.com"]
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: load-cc-opaque, namespace: default}
spec:
  displayName: Load opaque service
  clientType: confidential
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: client_secret_post
  allowedResources: ["https://billing.example.com"]
  tokens: {format: opaque, accessTokenLifetime: 30s}
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: load-cc-opaque, namespace: default}
spec:
  subject: {kind: InboundApp, name: load-cc-opaque}
  scopes: [billing:read]
  resources: ["https://billing.example.com"]
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: load-cli, namespace: default}
spec:
  displayName: Load CLI
  clientType: public
  grantTypes: [authorization_code, refresh_token]
  redirectUris: ["http://127.0.0.1/callback"]
  allowedScopes: [openid, profile, billing:read]
  allowedResources: ["https://billing.example.com"]
  tokens: {accessTokenLifetime: 1m, refreshTokenLifetime: 1m}
---
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: load-portal, namespace: default}
spec:
  displayName: Load Portal
  clientType: confidential
  grantTypes: [authorization_code, refresh_token]
  tokenEndpointAuthMethod: client_secret_basic
  redirectUris: ["http://127.0.0.1/callback"]
  allowedScopes: [openid, profile, billing:read]
  allowedResources: ["https://billing.example.com"]
  tokens: {format: opaque, accessTokenLifetime: 30s, refreshTokenLifetime: 1m}
YAML
cat >"$work/config/registration.yaml" <<'YAML'
apiVersion: inbound.dev/v1alpha1
kind: Scope
metadata: {name: read, namespace: mcp}
spec: {scope: 'billing:read', description: Read invoices through the MCP server, resource: 'https://mcp.example.com/mcp'}
---
apiVersion: inbound.dev/v1alpha1
kind: ConsentPolicy
metadata: {name: mcp, namespace: mcp}
spec:
  registration:
    dynamic: true
    approvedScopes: [{scope: 'billing:read', mandatory: true}]
    redirectUriPatterns: ['http://127.0.0.1/callback']
    resources: ['https://mcp.example.com/mcp']
    # One registration a second for minutes: far beyond the defaults (20 per address, 1000
    # in all per hour), which are for abuse, not for this steady load.
    limits: {maxClients: 100000, perSourcePerHour: 100000, totalPerHour: 100000}
    reapAfter: 1m
YAML

# serve DATA_DIR PORT [extra args...]: one server on CPU 0, its pid appended to pids.
# Loopback is a trusted proxy so that the driver's X-Forwarded-For gives each simulated user
# its own address (the per-address bounds on pending logins and registrations are for abuse).
serve() {
  local data=$1 port=$2; shift 2
  INBOUND_WORKER_THREADS=1 INBOUND_LOG=warn taskset -c 0 "$inbound" serve --config "$work/config" \
    --data-dir "$data" --listen "127.0.0.1:$port" --session-lifetime 1m --trusted-proxies 127.0.0.1/32 "$@" \
    >>"$data.out" 2>>"$data.err" &
  pids+=($!)
}
ready() { # port data-dir pid: ready, ours (still running), and the load apps' credentials written
  for _ in $(seq 200); do
    kill -0 "$3" 2>/dev/null || break
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null &&
      [ -s "$2/credentials/default/load-cc-jwt-credentials/client_id" ] && return 0
    sleep 0.1
  done
  echo "the server on port $1 did not start:" >&2; cat "$2.err" >&2; exit 1
}
drive() { # label store targets pids
  LOAD_LABEL=$1 LOAD_STORE=$2 LOAD_TARGETS=$3 LOAD_PIDS=$4 LOAD_DATA_DIR=$5 taskset -c 1 "$load_bin"
}
status=0

# 1. SQLite: one server.
run_sqlite() {
  mkdir -p "$work/sqlite"
  serve "$work/sqlite" "$PORT"
  ready "$PORT" "$work/sqlite" "${pids[0]}"
  drive "SQLite, one server" "$work/sqlite/state.db" "http://127.0.0.1:$PORT" "inbound=${pids[0]}" "$work/sqlite" ||
    { status=1; logs "$work/sqlite"; }
  kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
}
# 2. PostgreSQL: two replicas on one database, one data directory (replicas share the
# signing keys and client secrets, as they share a Secret in a cluster) and one issuer.
run_postgres() {
  local pg_port store
  pg_port=$(free_port)
  "${as_pg[@]}" "$PG_BIN/initdb" -D "$work/pg" -U inbound --auth=trust -E UTF8 >/dev/null
  "${as_pg[@]}" taskset -c 0 "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $work -c max_connections=100" start >/dev/null
  store="postgres://inbound@127.0.0.1:$pg_port/postgres"
  mkdir -p "$work/pgdata"
  serve "$work/pgdata" "$PORT" --store "$store" --issuer http://inbound.load
  serve "$work/pgdata" "$PORT_B" --store "$store" --issuer http://inbound.load
  ready "$PORT" "$work/pgdata" "${pids[0]}"
  ready "$PORT_B" "$work/pgdata" "${pids[1]}"
  drive "PostgreSQL, two replicas" "$store" "http://127.0.0.1:$PORT,http://127.0.0.1:$PORT_B" \
    "replica-a=${pids[0]},replica-b=${pids[1]}" "$work/pgdata" || { status=1; logs "$work/pgdata"; }
}
# The servers' warnings and errors (INBOUND_LOG=warn) when a run failed.
logs() { echo "--- $1: server log (last 20 lines)" >&2; tail -n 20 "$1.err" >&2 || true; }

for store in $STORES; do "run_$store"; done
exit $status
