#!/usr/bin/env bash
# Provisions a real kube-apiserver + etcd for the tests, from Debian's packages only (no
# Docker, no downloads outside the package registries). See
# ../shared/notes/test-infrastructure.md for why each step is needed.
#
# Prints nothing but progress; the binaries end up in $INBOUND_K8S_DIR (default
# ~/.cache/inbound/k8s): kube-apiserver (built once, ~6.5 min on 2 cores, then cached) and a
# symlink to etcd. Idempotent: a second run with the cache in place takes a second.
set -euo pipefail

dir=${INBOUND_K8S_DIR:-$HOME/.cache/inbound/k8s}
mkdir -p "$dir"
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
apt_install() {
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v etcd >/dev/null; then
  echo "k8s-test-env: installing etcd"
  $sudo apt-get update -qq && apt_install etcd-server
fi
ln -sfn "$(command -v etcd)" "$dir/etcd"
command -v kubectl >/dev/null || { $sudo apt-get update -qq && apt_install kubernetes-client; }

if [ -x "$dir/kube-apiserver" ] && "$dir/kube-apiserver" --version >/dev/null 2>&1; then
  exit 0
fi

echo "k8s-test-env: building kube-apiserver from Debian's kubernetes source (once, ~7 min)"
apt_install golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev \
  || { $sudo apt-get update -qq && apt_install golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev; }

# deb-src for the same mirror and suite as the binary sources.
src_list=/etc/apt/sources.list.d/inbound-deb-src.sources
if [ ! -f "$src_list" ]; then
  sed -n '/^Types: deb$/,/^$/p' /etc/apt/sources.list.d/debian.sources | head -n 6 |
    sed 's/^Types: deb$/Types: deb-src/' | $sudo tee "$src_list" >/dev/null
  $sudo apt-get update -qq
fi

build=$(mktemp -d "${TMPDIR:-/tmp}/inbound-k8s-build.XXXXXX")
trap 'rm -rf "$build"' EXIT
cd "$build"
apt-get source --download-only kubernetes >/dev/null 2>&1
dpkg-source -x --no-check kubernetes_*.dsc src >/dev/null
cd src

# The vendored reflect2 1.0.1 crashes under Go >= 1.18 the first time a custom resource is
# written; swap in Debian's reflect2 1.0.2 and json-iterator 1.1.12.
for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "vendor/$pkg"
  mkdir -p "vendor/$pkg"
  cp -r "/usr/share/gocode/src/$pkg/." "vendor/$pkg/"
  find "vendor/$pkg" \( -name go.mod -o -name go.sum -o -name '*_test.go' \) -delete
done

export GOPATH=$PWD/.go CGO_ENABLED=0 GOFLAGS=-mod=vendor GOCACHE=$HOME/.cache/inbound/go-build
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
make WHAT=cmd/kube-apiserver >/dev/null
install -m 0755 _output/bin/kube-apiserver "$dir/kube-apiserver.tmp"
mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
echo "k8s-test-env: kube-apiserver cached in $dir"
