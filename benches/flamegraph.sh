#!/usr/bin/env bash
# Where the time goes (issue #17): flame graphs of the release server under load, one per
# endpoint, written as benches/flamegraph-<endpoint>.svg. The server runs the quickstart as
# `make bench` runs it (one runtime worker, pinned to CPU 0); wrk drives it from CPU 1 over
# keep-alive; `perf record` samples the server's CPU clock (hardware counters are not
# available on this VM) with DWARF call stacks (the release profile keeps line tables but
# no frame pointers) for DURATION per endpoint:
#   client_credentials    billing-agent (client_secret_basic), an ES256 JWT access token
#   introspection_opaque  reporting-job (client_secret_post) introspecting its own opaque
#                         tokens, 200 distinct ones in rotation
# The stacks are folded by inferno (installed from crates.io into ~/.cache/inbound/tools);
# frames under MINWIDTH percent of the samples are left out of the SVG to keep it small. The top
# self-time functions of each endpoint are printed, as sampled and with kernel time charged
# to the user-space function that made the system call.
#
#   make bench-flamegraph               # 10 s per endpoint, 16 connections
#   DURATION=5s FREQ=199 make bench-flamegraph
#   KEEP=dir make bench-flamegraph      # keep perf.data and the folded stacks
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DURATION=${DURATION:-10s}
seconds=${DURATION%s}
FREQ=${FREQ:-99}            # samples/s: ~1000 stacks per endpoint, perf.data ~45 MB (deleted)
STACK=${STACK:-65528}       # bytes of stack copied per sample: less, and the stacks stop short of the runtime
CONNECTIONS=${CONNECTIONS:-16}
MINWIDTH=${MINWIDTH:-0.5}        # percent of the samples (0.1 doubles the SVG to ~650 KB)
TOP=${TOP:-15}
PORT=${PORT:-18961}
TOOLS=${INBOUND_TOOLS:-$HOME/.cache/inbound/tools}
INFERNO_VERSION=0.12.8

need wrk
need taskset util-linux
command -v perf >/dev/null || apt_install linux-perf
[ "$(nproc)" -ge 2 ] || die "needs two CPUs (the server on CPU 0, wrk on CPU 1)"
if [ ! -x "$TOOLS/bin/inferno-flamegraph" ] || [ ! -x "$TOOLS/bin/inferno-collapse-perf" ]; then
  say "installing inferno $INFERNO_VERSION into $TOOLS"
  cargo install --quiet --locked --version "$INFERNO_VERSION" --root "$TOOLS" inferno
fi
collapse=$TOOLS/bin/inferno-collapse-perf
flamegraph=$TOOLS/bin/inferno-flamegraph

say "building the release server"
build_release
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit="$commit+changes"

bench_work
# The server runs from a hard link of the binary it was built as: cargo re-links
# target/release/inbound whenever any build of the package (a bench, another checkout
# sharing the target folder) finishes, and perf resolves symbols by path after the run.
ln "$INBOUND_BIN" "$work/inbound" 2>/dev/null || cp "$INBOUND_BIN" "$work/inbound"
INBOUND_BIN=$work/inbound
port_free "$PORT" || die "port $PORT is taken (PORT=...)"
cp -r examples/quickstart "$work/config"
start_inbound "$PORT" "$work/inbound.log"
wait_ready inbound "http://127.0.0.1:$PORT/readyz" "$work/inbound.log"
base="http://127.0.0.1:$PORT"

# client_credentials: billing-agent, client_secret_basic; the answer must be a token.
agent_basic=$(client_basic billing-agent)
cc_body="grant_type=client_credentials&scope=billing:read"
curl -sS -f -H "Authorization: Basic $agent_basic" -d "$cc_body" "$base/token" | json access_token >/dev/null ||
  die "billing-agent is refused a token"
post_lua "$cc_body" "$agent_basic" >"$work/client_credentials.lua"

# introspection: reporting-job (client_secret_post) and its opaque tokens.
job_id=$(client_id reporting-job)
job_secret=$(client_secret reporting-job)
job_auth="&client_id=$job_id&client_secret=$job_secret"
: >"$work/tokens.lua"
for _ in $(seq 200); do
  t=$(curl -sS -f -d "grant_type=client_credentials$job_auth" "$base/token" | json access_token) ||
    die "reporting-job is refused a token"
  case $t in *.*.*) die "reporting-job was issued a JWT, not an opaque token" ;; esac
  printf '"%s",\n' "$t" >>"$work/tokens.lua"
done
curl -sS -f --data-urlencode "token=$t" -d "${job_auth#&}" "$base/introspect" | grep -q '"active":true' ||
  die "the opaque token does not introspect as active"
introspect_lua "" "$work/tokens.lua" "$job_auth" >"$work/introspection_opaque.lua"

profile() { # $1 endpoint, $2 path, $3 title
  local name=$1 url=$base$2 data=$work/$1.perf.data folded=$work/$1.folded svg=benches/flamegraph-$1.svg
  local out line
  # Warm: caches, lazy statics, the store's connection pool.
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d2s -s "$work/$name.lua" "$url" >/dev/null
  say "$name: perf record for ${seconds} s under wrk -c$CONNECTIONS"
  taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$((seconds + 2))s" -s "$work/$name.lua" "$url" >"$work/$name.wrk" 2>&1 &
  local wrk_pid=$!
  sleep 1
  taskset -c 1 perf record -q --no-buildid-cache -e cpu-clock -F "$FREQ" --call-graph "dwarf,$STACK" -p "$server_pid" -o "$data" \
    -- sleep "$seconds" 2>"$work/$name.perf.log" ||
    { cat "$work/$name.perf.log" >&2; die "perf record failed"; }
  wait "$wrk_pid" || die "wrk failed on $url: $(cat "$work/$name.wrk")"
  line=$(grep '^RESULT' "$work/$name.wrk") || die "wrk printed no result for $url: $(cat "$work/$name.wrk")"
  read -r _ _ errors rps _ <<<"$line"
  [ "$errors" = 0 ] || die "$name: $errors errors under load (a profile of refusals measures nothing)"
  say "$name: $rps requests/s while sampled ($(du -h "$data" | cut -f1) of perf.data); folding the stacks"
  taskset -c 1 perf script -i "$data" -F comm,tid,time,event,ip,sym,dso 2>/dev/null | "$collapse" --all >"$folded"
  [ -s "$folded" ] || die "$name: no stacks were folded"
  "$flamegraph" --title "$3, commit $commit" --subtitle "$rps requests/s at $CONNECTIONS connections; perf cpu-clock at $FREQ Hz for ${seconds} s (one runtime worker on CPU 0)" \
    --minwidth "$MINWIDTH" --hash --width 1600 --countname samples <"$folded" >"$svg"
  say "$name: wrote $svg ($(du -h "$svg" | cut -f1))"
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$data" "$folded" "$KEEP/"; fi
  # Self time: the leaf of every folded stack (inlined frames counted as their own); then
  # with the kernel's frames charged to the user-space function that entered the kernel.
  python3 - "$folded" "$TOP" "$name" <<'PY'
import collections, sys
path, top, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
own, user, total = collections.Counter(), collections.Counter(), 0
for line in open(path):
    stack, _, n = line.rstrip("\n").rpartition(" ")
    n, frames = int(n), stack.split(";")
    total += n
    own[frames[-1]] += n
    while len(frames) > 1 and frames[-1].endswith("_[k]"):
        frames.pop()
    user[frames[-1] if len(frames) > 1 else frames[0] + " (kernel only)"] += n
for title, counts in (("self time", own), ("self time, kernel charged to its caller", user)):
    print("\n%s: top %d functions by %s (of %d samples)" % (name, top, title, total))
    for leaf, n in counts.most_common(top):
        print("%6.2f%%  %s" % (100 * n / total, leaf[:160]))
PY
}
profile client_credentials /token "inbound: POST /token (client_credentials, ES256 JWT access token)"
profile introspection_opaque /introspect "inbound: POST /introspect (an opaque token, by its client)"
