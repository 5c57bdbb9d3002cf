# Helpers shared by the bench scripts. Sourced first thing, before any `cd`:
#
#   . "$(dirname "$0")/lib.sh"
#
# Sourcing it moves to the repository root and exports CARGO_TARGET_DIR (default
# ~/.cache/inbound/target, the Makefile's). Helpers that touch a server use the globals
# `work` (the scratch folder, see bench_work) and `server_pid` (the server under test).

cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${CARGO_TARGET_DIR:=$HOME/.cache/inbound/target}"
export CARGO_TARGET_DIR
# INBOUND_BIN=path runs another build of the server (a before/after comparison).
INBOUND_BIN=${INBOUND_BIN:-$CARGO_TARGET_DIR/release/inbound}
BENCH_NAME=${BENCH_NAME:-$(basename "$0" .sh)}
server_pid=""

say() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() { say "$*"; exit 1; }

# --- tools -------------------------------------------------------------------------------
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
apt_updated=""
apt_install() { # Debian packages; their services are not started (policy-rc.d, as in images)
  local guard="" rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  [ -n "$apt_updated" ] || { $sudo apt-get update -qq || rc=$?; apt_updated=1; }
  [ "$rc" = 0 ] && { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null || rc=$?; }
  [ -z "$guard" ] || $sudo rm -f /usr/sbin/policy-rc.d
  return "$rc"
}
need() { # $1 command, $2 Debian package providing it (default: the command's name)
  command -v "$1" >/dev/null || apt_install "${2:-$1}"
}

# --- builds ------------------------------------------------------------------------------
build_release() { cargo build --release --locked --quiet; }
bench_bin() { # $1: bench target; prints the path of its executable (built if need be)
  cargo bench --locked --bench "$1" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("target",{}).get("name")==sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
}

# --- the scratch folder and the server ---------------------------------------------------
# bench_work makes $work and, on exit, stops the server, runs the functions named in
# cleanup_hooks (the script's own clean-up) and removes $work.
cleanup_hooks=()
bench_cleanup() {
  stop_server
  local hook
  for hook in "${cleanup_hooks[@]}"; do "$hook" || true; done
  [ -z "${work:-}" ] || rm -rf "$work"
}
bench_work() {
  work=$(mktemp -d)
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
stop_server() {
  [ -n "$server_pid" ] || return 0
  kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
port_free() { ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; }
# The release server on $work/config with one runtime worker, pinned to CPU 0 (or under
# the wrapper given, e.g. valgrind), listening on 127.0.0.1:$1; sets server_pid.
start_inbound() { # $1 port, $2 log file, [$3... wrapper command, default: taskset -c 0]
  local port=$1 log=$2; shift 2
  [ "$#" -gt 0 ] || set -- taskset -c 0
  INBOUND_WORKER_THREADS=1 INBOUND_LOG=warn "$@" "$INBOUND_BIN" serve \
    --config "$work/config" --data-dir "$work/data" --listen "127.0.0.1:$port" >"$log" 2>&1 &
  server_pid=$!
}
wait_ready() { # $1 name, $2 url, $3 log, [$4 tries, default 300, of 0.1 s each]
  for _ in $(seq "${4:-300}"); do
    kill -0 "$server_pid" 2>/dev/null || { say "$1 exited at start-up:"; tail -n 40 "$3" >&2; exit 1; }
    curl -sf -o /dev/null "$2" && return 0
    sleep 0.1
  done
  say "$1 did not answer $2 within $(( ${4:-300} / 10 )) s:"; tail -n 40 "$3" >&2; exit 1
}
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$server_pid/status"; }

# --- clients -----------------------------------------------------------------------------
json() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
basic() { printf '%s:%s' "$1" "$2" | base64 -w0; }
creds() { printf '%s/data/credentials/default/%s-credentials' "$work" "$1"; } # $1 app
client_id() { cat "$(creds "$1")/client_id"; }
client_secret() { cat "$(creds "$1")/client_secret"; }
client_basic() { basic "$(client_id "$1")" "$(client_secret "$1")"; } # $1 app

# wrk scripts: every one ends with a RESULT line,
#   RESULT <requests> <errors> <requests/s> <p50 ms> <p99 ms>
done_lua='done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.0f %.3f %.3f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end'
post_lua() { # $1 body, $2 Basic (none: no Authorization header)
  printf 'wrk.method = "POST"\nwrk.body = "%s"\n' "$1"
  printf 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
  [ -z "$2" ] || printf 'wrk.headers["Authorization"] = "Basic %s"\n' "$2"
  printf '%s\n' "$done_lua"
}
introspect_lua() { # $1 Basic, $2 file of tokens, one `"token",` a line, posted in rotation;
  # [$3 more form fields, e.g. "&client_id=...&client_secret=..."]
  post_lua "" "$1"
  printf 'tokens = {\n%s}\ni = 0\n' "$(cat "$2")"
  local extra=""; [ -z "${3:-}" ] || extra=" .. \"$3\""
  printf 'request = function()\n  i = i %% #tokens + 1\n  return wrk.format(nil, nil, nil, "token=" .. tokens[i]%s)\nend\n' "$extra"
}

# --- a trusted CI issuer -------------------------------------------------------------------
# The app `ci-deployer`: it trusts https://ci.example.com (the key verify_rate made, in
# $1/jwks.json) for the JWT bearer grant and as token exchange subject tokens, and is
# granted billing:read on https://billing.example.com both ways. Prints the manifests.
ci_deployer_manifests() { # $1 the folder verify_rate wrote
  cat <<YAML
apiVersion: inbound.dev/v1alpha1
kind: InboundApp
metadata: {name: ci-deployer, namespace: default}
spec:
  displayName: CI deployer
  grantTypes: ["urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"]
  allowedResources: ["https://billing.example.com"]
  trustedIssuers:
    - issuer: https://ci.example.com
      jwks: '$(cat "$1/jwks.json")'
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
---
apiVersion: inbound.dev/v1alpha1
kind: ClientGrant
metadata: {name: ci-deployer-delegated, namespace: default}
spec:
  subject: {kind: InboundApp, name: ci-deployer}
  scopes: [billing:read]
  resources: ["https://billing.example.com"]
  tokenExchange: {subjectTokenTypes: [Jwt]}
YAML
}
