#!/usr/bin/env bash
# Runs the crate's pure code under Miri (undefined behaviour, overflow, out-of-bounds): the
# library's unit tests, tests/plan.rs (the planning logic against its reference model) and the
# doctests of icache::plan. Nothing that issues cache-maintenance instructions or system calls
# runs here: Miri can execute neither.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "== miri: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
  echo "== miri: installing miri and rust-src"
  rustup +nightly component add miri rust-src
fi

# Few proptest cases: Miri runs these ~1000x slower than native (.ci/test runs many natively).
# Under Miri's isolation the program sees no environment and no files unless told: forward the
# case count, and turn off proptest's failure files (it would need the current directory).
# Permissive provenance: the API takes addresses as integers by design (tests build them so).
export PROPTEST_CASES=${MIRI_PROPTEST_CASES:-4}
export PROPTEST_DISABLE_FAILURE_PERSISTENCE=1
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-permissive-provenance \
-Zmiri-env-forward=PROPTEST_CASES -Zmiri-env-forward=PROPTEST_DISABLE_FAILURE_PERSISTENCE"

# Too slow under Miri (minutes each), and all pure arithmetic that the native suite and the
# fuzz targets cover: byte-by-byte sets for every line size and for 128 KiB ranges.

pass=0
fail=0
step() { # NAME COMMAND...
  local name=$1
  shift
  echo "== miri: $name"
  if "$@"; then
    echo "PASS $name"
    pass=$((pass + 1))
  else
    echo "FAIL $name"
    fail=$((fail + 1))
  fi
}

step "unit tests (--lib)" cargo +nightly miri test --lib
# tests/plan.rs shrinks its ranges under cfg(miri), so all of it runs here.
step "tests/plan.rs (PROPTEST_CASES=$PROPTEST_CASES)" cargo +nightly miri test --test plan
# Only the plan module's examples: the rest call pipeline_flush_mt (a system call).
step "doctests of icache::plan" cargo +nightly miri test --doc -- 'plan::'

echo "miri: $pass passed, $fail failed"
[ "$fail" = 0 ]
