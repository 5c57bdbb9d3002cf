#!/usr/bin/env bash
# Exercises the image `make image` built, as it holds it (podman cannot run containers on
# these machines: setrlimit is refused): its root filesystem, mounted, copied, and run with
# chroot as the image's non-root user — `--version`, then `serve` on the quickstart
# answering discovery on loopback. `make image-test`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(bash scripts/image.sh)
echo "$out"
image=$(sed -n 's/^image //p' <<<"$out")
archive=$(sed -n 's/^archive //p' <<<"$out")
podman=(podman --storage-driver vfs)
fail() { echo "image-test: $*" >&2; exit 1; }

[ -s "$archive" ] || fail "no OCI archive at $archive"
tar -tf "$archive" | grep -q '^index.json$' || fail "$archive is not an OCI archive"
config=$("${podman[@]}" image inspect "$image" --format '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}')
[ "$config" = '65532:65532 ["/usr/local/bin/inbound"] ["operator"]' ] || fail "unexpected image config: $config"

root=$("${podman[@]}" image mount "$image")
work=$(mktemp -d)
trap '"${podman[@]}" image unmount "$image" >/dev/null 2>&1 || true; kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cp -a "$root" "$work/root"
run() { chroot --userspec=65532:65532 "$work/root" "$@"; }

version=$(run /usr/local/bin/inbound --version)
expected="inbound $(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/inbound/Chart.yaml)"
[ "$version" = "$expected" ] || fail "--version printed '$version', expected '$expected'"
[ "$(run /bin/id -u 2>/dev/null || echo none)" = none ] || fail "the image holds a shell tool it should not"

# serve on the quickstart, as the non-root user, writing only to /tmp.
cp -r examples/quickstart "$work/root/config"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Not through run(): a backgrounded function is a subshell, and $! would be its PID rather
# than the server's (chroot execs inbound), leaving the server running after the trap.
chroot --userspec=65532:65532 "$work/root" /usr/local/bin/inbound serve --config /config --data-dir /tmp/data \
  --listen "127.0.0.1:$port" --audit-stdout false >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/.well-known/openid-configuration" -o "$work/discovery.json" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; fail "serve exited"; }
  sleep 0.1
done
grep -q "\"issuer\":\"http://127.0.0.1:$port\"" "$work/discovery.json" || { cat "$work/serve.log"; fail "no discovery"; }
owner=$(stat -c %u "$work/root/tmp/data/keys.json")
[ "$owner" = 65532 ] || fail "the data directory is written as uid $owner, not the image's user"
echo "image-test: $image runs as 65532: --version, serve and discovery work"
