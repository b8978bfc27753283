#!/usr/bin/env bash
# Fuzzes icache's pure planning code (fuzz/: CTR_EL0 decoding, Span, LineWalk, RangePlan)
# with cargo-fuzz and libFuzzer, each target against a plain model, for FUZZ_SECONDS each
# (default 30). Fails on any crash, panic, overflow or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== fuzz: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== fuzz: installing cargo-fuzz (compiles from source)"
  cargo install cargo-fuzz --locked
fi
# libFuzzer itself is C++, built by libfuzzer-sys: install g++ through setup.sh's hook.
if ! command -v c++ >/dev/null 2>&1; then
  echo "== fuzz: installing g++"
  EXTRA_APT=(g++)
  # shellcheck source=setup.sh
  source .ci/setup.sh
fi

cd fuzz
# Overflow checks and debug assertions on (-a), optimised, AddressSanitizer (the default).
echo "== fuzz: building the targets"
cargo +nightly fuzz build -a
mapfile -t targets < <(cargo +nightly fuzz list)

pass=0
fail=0
for t in "${targets[@]}"; do
  echo "== fuzz: $t for ${seconds}s"
  log=$(mktemp)
  # The corpus grows in fuzz/corpus/<target> (ignored by git): empty on a fresh machine, kept
  # and extended on a warm one. The time bound is what keeps CI predictable.
  if timeout $((seconds + 120)) cargo +nightly fuzz run -a "$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "PASS $t: $runs inputs, no crash"
    pass=$((pass + 1))
  else
    echo "FAIL $t"
    tail -n 40 "$log" | sed 's/^/    /'
    fail=$((fail + 1))
  fi
  rm -f "$log"
done

[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: no targets found" >&2; fail=$((fail + 1)); }
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
