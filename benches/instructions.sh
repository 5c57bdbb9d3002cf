#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind over a fixed number of
# keep-alive requests per endpoint: a figure that does not move with whatever else the
# machine does (hardware counters are not available on this VM), to compare before and
# after each optimisation. The server runs the quickstart with one runtime worker under
# callgrind; counting is switched on only around each endpoint's requests.
#
#   make bench-instructions            # 2000 requests per endpoint
#   REQUESTS=500 make bench-instructions
#   KEEP=dir make bench-instructions   # keep the callgrind dumps (callgrind_annotate them)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/inbound/target}"
export CARGO_TARGET_DIR
REQUESTS=${REQUESTS:-2000}
PORT=${PORT:-18941}

if ! command -v valgrind >/dev/null; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind
fi
cargo build --release --locked --quiet

work=$(mktemp -d)
cleanup() { [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cp -r examples/quickstart "$work/config"
# Symbols for the per-function costs (the release profile strips nothing it needs).
INBOUND_WORKER_THREADS=1 INBOUND_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$work/callgrind.%p" "$CARGO_TARGET_DIR/release/inbound" serve \
  --config "$work/config" --data-dir "$work/data" --listen "127.0.0.1:$PORT" >"$work/out" 2>"$work/err" &
server_pid=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "the server did not start" >&2; cat "$work/err" >&2; exit 1; }

creds() { printf '%s:%s' "$(cat "$work/data/credentials/default/$1-credentials/client_id")" \
  "$(cat "$work/data/credentials/default/$1-credentials/client_secret")"; }
agent_basic=$(creds billing-agent | base64 -w0)
IFS=: read -r job_id job_secret <<<"$(creds reporting-job)"
opaque=$(curl -s -d grant_type=client_credentials -d client_id="$job_id" -d client_secret="$job_secret" \
  "http://127.0.0.1:$PORT/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# One keep-alive connection, $REQUESTS requests; every answer must be 200.
drive() { # $1 method, $2 path, $3 body, $4 Authorization (or "")
  python3 - "$PORT" "$REQUESTS" "$@" <<'PY'
import http.client, sys
port, n, method, path, body, auth = int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:7]
conn = http.client.HTTPConnection("127.0.0.1", port)
headers = {"Content-Type": "application/x-www-form-urlencoded"}
if auth:
    headers["Authorization"] = auth
for _ in range(n):
    conn.request(method, path, body=body or None, headers=headers)
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{method} {path}: {r.status}")
PY
}

newest_dump() { ls -v "$work"/callgrind.*.* | tail -1; }
total_ir() { awk '/^totals:/ {print $2; exit}' "$(newest_dump)"; }

printf '\n| endpoint | instructions per request |\n|---|---|\n'
measure() { # $1 label, then drive's arguments
  local label=$1; shift
  drive "$@" >/dev/null # warm: caches, lazy statics, connection pools
  # Uninstrumented work costs nothing and a dump resets the counts: this dump holds
  # exactly the requests below.
  callgrind_control --instr=on "$server_pid" >/dev/null
  drive "$@"
  callgrind_control --instr=off "$server_pid" >/dev/null
  callgrind_control --dump="$label" "$server_pid" >/dev/null
  local ir; ir=$(total_ir)
  [ -n "$ir" ] || { echo "no instruction count for $label" >&2; exit 1; }
  printf '| %s | %s |\n' "$label" "$(python3 -c "print(f'{$ir / $REQUESTS:,.0f}')")"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$(newest_dump)" "$KEEP/$label.callgrind"; fi
}
measure jwks GET /jwks "" ""
measure discovery GET /.well-known/openid-configuration "" ""
measure client_credentials POST /token "grant_type=client_credentials&scope=billing:read" "Basic $agent_basic"
measure introspection_opaque POST /introspect "token=$opaque&client_id=$job_id&client_secret=$job_secret" ""
