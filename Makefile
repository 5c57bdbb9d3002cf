# The README's commands. Builds are cached under ~/.cache so CI on a fresh clone reuses them.
CARGO_TARGET_DIR ?= $(HOME)/.cache/inbound/target
export CARGO_TARGET_DIR

.PHONY: test test-deps lint unit integration crds quickstart bench bench-instructions bench-postgres bench-peers bench-flamegraph bench-load bench-memory fuzz fuzz-smoke image image-test

## Everything CI runs: install what the tests need, lint, all tests, a short fuzzing pass.
test: test-deps lint
	cargo test --locked --lib --bins --tests
	$(MAKE) image-test
	$(MAKE) fuzz-smoke

## Tools the tests use that are not Rust crates (installed from Debian if missing).
test-deps:
	bash scripts/test-deps.sh

lint:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings

unit:
	cargo test --locked --lib

integration:
	cargo test --locked --test integration

## Regenerate crds/ from src/api (a test fails when they drift).
crds:
	cargo run --quiet --locked -- crds > crds/inbound.dev.yaml
	cp crds/inbound.dev.yaml charts/inbound/files/crds.yaml

## The quickstart: serve the bundled example on http://127.0.0.1:8080.
quickstart:
	cargo run --release --locked -- serve --config examples/quickstart

## The image the chart runs: built with podman from the release binary (no Docker engine,
## no base image), tagged with the chart's appVersion, saved as an OCI archive.
image:
	bash scripts/image.sh

## Builds the image, then runs it as its non-root user: --version, serve, discovery.
image-test:
	bash scripts/image-test.sh

## Throughput and latency of the release server (see README "Performance").
bench:
	bash benches/bench.sh

## Instructions per request under valgrind's callgrind (noise-free; see README "Performance").
bench-instructions:
	bash benches/instructions.sh

## Code exchange and refresh rotation against PostgreSQL (see README "Performance").
bench-postgres:
	bash benches/bench-postgres.sh

## inbound against npm oidc-provider and a static nginx, one table (issue #17).
bench-peers:
	bash benches/bench-peers.sh

## Flame graphs of the release server under load, benches/flamegraph-*.svg (perf + inferno).
bench-flamegraph:
	bash benches/flamegraph.sh

## Minutes of mixed traffic at a fixed rate on SQLite, then two replicas on PostgreSQL:
## zero errors, p99, RSS and store rows over time (issue #17). DURATION=30 for a smoke run.
bench-load:
	bash benches/load.sh

## The server's RSS growth per 100k opaque access tokens and per 100k refresh tokens, on
## SQLite and PostgreSQL (issue #17). TOKENS=20000 STORES=sqlite for a smoke run.
bench-memory:
	bash benches/memory.sh

## Every fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS each (libFuzzer, nightly, ASan).
FUZZ_SECONDS ?= 60
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

## What CI runs: every target for a few seconds (finds regressions against the seeds).
fuzz-smoke:
	bash scripts/fuzz.sh 5
