#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `scripts/fuzz.sh SECONDS [TARGET...]`.
#
# libFuzzer through cargo fuzz, on the nightly toolchain (installed beside stable), with
# AddressSanitizer. The build is cached under ~/.cache/inbound/fuzz-target (cold: ~20 min on
# 2 cores; warm: about a minute). Seeds are in fuzz/corpus/<target>/ (committed); what the
# fuzzer adds goes to ~/.cache/inbound/fuzz-corpus/<target>/ (kept between runs, never
# committed). Exits non-zero when a target finds a crash; the input is in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
export CARGO_TARGET_DIR="$HOME/.cache/inbound/fuzz-target"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --quiet
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
(cd fuzz && cargo +nightly fuzz build --release)
failed=0
for target in "${targets[@]}"; do
  corpus="$HOME/.cache/inbound/fuzz-corpus/$target"
  mkdir -p "$corpus"
  log=$(mktemp)
  if (cd fuzz && cargo +nightly fuzz run --release "$target" "$corpus" "corpus/$target" -- \
      -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz: $target: ${seconds}s, $runs executions, no crash"
  else
    failed=1
    echo "fuzz: $target: CRASH (the input is under fuzz/artifacts/$target/):"
    grep -E 'panicked|ERROR: AddressSanitizer|SUMMARY|Test unit written' "$log" | head -10
  fi
  rm -f "$log"
done
exit $failed
