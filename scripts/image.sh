#!/usr/bin/env bash
# Builds the image the chart runs, without a Docker engine or a base image (see
# config/docker/Containerfile): `make image`. Tags it with the chart's appVersion and writes
# an OCI archive. Prints the image name and the archive path.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/inbound/Chart.yaml)
repository=$(sed -n 's/^  repository: *//p' charts/inbound/values.yaml | head -1)
image="${IMAGE:-$repository:$version}"

if ! command -v podman >/dev/null; then
  echo "installing: podman"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends podman
fi

cargo build --release --locked --bin inbound
binary="$target/release/inbound"

# The root filesystem: the binary, what it links, certificates, the non-root user.
stage="$target/image"
rm -rf "$stage"
mkdir -p "$stage/rootfs/usr/local/bin" "$stage/rootfs/etc/ssl/certs" "$stage/rootfs/tmp"
# Without debug information (the release profile keeps it for profiling): a fraction of the size.
strip --strip-all -o "$stage/rootfs/usr/local/bin/inbound" "$binary"
chmod 0755 "$stage/rootfs/usr/local/bin/inbound"
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$stage/rootfs$(dirname "$lib")"
  cp -L "$lib" "$stage/rootfs$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$stage/rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' \
  > "$stage/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$stage/rootfs/etc/group"
chmod 1777 "$stage/rootfs/tmp"
cp config/docker/Containerfile "$stage/Containerfile"

podman=(podman --storage-driver vfs)
"${podman[@]}" build --isolation chroot --quiet -f "$stage/Containerfile" -t "$image" "$stage" >/dev/null
archive="$target/inbound-image-$version.oci.tar"
rm -f "$archive"
"${podman[@]}" save --quiet --format oci-archive -o "$archive" "$image"
echo "image $image"
echo "archive $archive"
