#!/usr/bin/env bash
# Runs the crate's pure code under Miri (undefined behaviour, overflow, out-of-bounds): the
# library's unit tests, tests/plan.rs (the planning logic against its reference model) and the
# doctests of icache::plan. Nothing that issues cache-maintenance instructions or system calls
# runs here: Miri can execute neither.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init miri
ci_toolchain nightly miri rust-src

# Few proptest cases: Miri runs these ~1000x slower than native (.ci/test runs many natively).
# Under Miri's isolation the program sees no environment and no files unless told: forward the
# case count, and turn off proptest's failure files (it would need the current directory).
# Permissive provenance: the API takes addresses as integers by design (tests build them so).
export PROPTEST_CASES=${MIRI_PROPTEST_CASES:-4}
export PROPTEST_DISABLE_FAILURE_PERSISTENCE=1
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-permissive-provenance \
-Zmiri-env-forward=PROPTEST_CASES -Zmiri-env-forward=PROPTEST_DISABLE_FAILURE_PERSISTENCE"

ci_check "unit tests (--lib)" cargo +nightly miri test --lib
# tests/plan.rs shrinks its ranges under cfg(miri), so all of it runs here.
ci_check "tests/plan.rs (PROPTEST_CASES=$PROPTEST_CASES)" cargo +nightly miri test --test plan
# Only the plan module's examples: the rest call pipeline_flush_mt (a system call).
ci_check "doctests of icache::plan" cargo +nightly miri test --doc -- 'plan::'
ci_summary
