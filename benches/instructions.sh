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
. "$(dirname "$0")/lib.sh"
REQUESTS=${REQUESTS:-2000}
PORT=${PORT:-18941}

need valgrind
build_release
verify_bin=$(bench_bin verify_rate)
[ -x "$verify_bin" ] || die "the verify_rate bench did not build"

bench_work
cp -r examples/quickstart "$work/config"
# A CI issuer's key and an assertion from it (verify_rate writes both), trusted by an app
# for the JWT bearer grant and as token exchange subject tokens.
mkdir -p "$work/ci-issuer"
"$verify_bin" https://ci.example.com "http://127.0.0.1:$PORT" "$work/ci-issuer" >/dev/null
ci_deployer_manifests "$work/ci-issuer" >"$work/config/bench-instructions.yaml"
# Symbols for the per-function costs (the release profile strips nothing it needs).
start_inbound "$PORT" "$work/err" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$work/callgrind.%p"
wait_ready "the server (under callgrind)" "http://127.0.0.1:$PORT/readyz" "$work/err" 1200

agent_basic=$(client_basic billing-agent)
job_id=$(client_id reporting-job)
job_secret=$(client_secret reporting-job)
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
assertion=$(cat "$work/ci-issuer/assertion")
ci_basic=$(client_basic ci-deployer)
measure jwt_bearer POST /token "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=$assertion" \
  "Basic $ci_basic"
measure token_exchange POST /token \
  "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=$assertion&subject_token_type=urn:ietf:params:oauth:token-type:jwt" \
  "Basic $ci_basic"
