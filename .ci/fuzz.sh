#!/usr/bin/env bash
# Fuzzes icache's pure planning code (fuzz/: CTR_EL0 decoding, Span, LineWalk, RangePlan)
# with cargo-fuzz and libFuzzer, each target against a plain model, for FUZZ_SECONDS each
# (default 30). Fails on any crash, panic, overflow or sanitizer report.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init fuzz

seconds=${FUZZ_SECONDS:-30}

ci_toolchain nightly
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (compiles from source)"
  cargo install cargo-fuzz --locked
fi
# libFuzzer itself is C++, built by libfuzzer-sys.
ci_apt c++:g++

cd fuzz
# Overflow checks and debug assertions on (-a), optimised, AddressSanitizer (the default).
say "building the targets"
cargo +nightly fuzz build -a
mapfile -t targets < <(cargo +nightly fuzz list)

for t in "${targets[@]}"; do
  say "$t for ${seconds}s"
  log=$(mktemp)
  # The corpus grows in fuzz/corpus/<target> (ignored by git): empty on a fresh machine, kept
  # and extended on a warm one. The time bound is what keeps CI predictable.
  if timeout $((seconds + 120)) cargo +nightly fuzz run -a "$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    ci_pass "$t: $runs inputs, no crash"
  else
    tail -n 40 "$log" | sed 's/^/    /'
    ci_fail "$t"
  fi
  rm -f "$log"
done

[ "${#targets[@]}" -gt 0 ] || ci_fail "no fuzz targets found"
ci_summary
