#!/usr/bin/env bash
# The coherence checker stage of .ci/test:
#   1. QEMU 10 user mode from Debian 13's signed source package (.ci/qemu10.sh, cached);
#   2. the plugin (tests/qemu-plugin/coherence.c) against QEMU's own header;
#   3. its self-tests: tests/qemu-plugin/selftest.c, one program mode per defect, on four
#      AArch64 models and riscv64, each reported with the expected class (and the complete
#      sequences with none);
#   4. the crate's JIT tests (tests/jit.rs, tests/stress.rs, tests/dynasm-client/tests/
#      dynasm.rs) and examples/jit.rs under the checker on aarch64 max (32-byte lines),
#      cortex-a53 (64), a64fx (256), neoverse-n2 (IDC=1) and riscv64: zero findings each;
#   5. mutants: the crate with one flush step broken at a time (a fixed 64-byte ic stride,
#      no clean, no dsb between clean and invalidate, no isb, a pipeline_flush_local that does
#      nothing, RISC-V flags 1), built from a copy of the tree: tests/jit.rs under the checker
#      must fail each one;
#   6. the peers table (benches/coherence-peers): icache and every peer, one and two
#      threads, every model, written to target/coherence/peers.md and checked against what
#      each peer is known to get wrong (.ci/coherence.py).
# Ends with "coherence: N passed, M failed".
#   COHERENCE_ONLY=selftest|crate|mutants|peers   run one part (after the build)
#   COHERENCE_UPDATE=BENCHMARKS.md                 rewrite the checker's section there
set -uo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init coherence
ci_setup || { ci_fail "setup"; ci_summary; exit 1; }
out=$PWD/target/coherence
mkdir -p "$out"
only=${COHERENCE_ONLY:-}
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

t0=$SECONDS
qemu=$(bash .ci/qemu10.sh) || { ci_fail "QEMU 10 build"; ci_summary; exit 1; }
say "QEMU 10 at $qemu ($((SECONDS - t0)) s)"
export QEMU10_PREFIX=$qemu
# Builds the plugin (coherence-run does it when the source is newer).
bash .ci/coherence-run --wrap-only --out "$out/probe" >/dev/null || ci_fail "plugin build"

if want selftest; then
  say "self-tests"
  aarch64-linux-gnu-gcc -O2 -Wall -Werror -static -pthread -o "$out/selftest-aarch64" tests/qemu-plugin/selftest.c &&
    riscv64-linux-gnu-gcc -O2 -Wall -Werror -static -pthread -o "$out/selftest-riscv64" tests/qemu-plugin/selftest.c ||
    ci_fail "self-test programs do not build"
  ci_check "self-tests" python3 .ci/coherence.py selftest --run .ci/coherence-run \
    --aarch64 "$out/selftest-aarch64" --riscv64 "$out/selftest-riscv64"
fi

# One model: the JIT tests and the example under the checker, zero findings required.
crate_model() { # target cpu
  local target=$1 cpu=$2 dir wrap
  dir=$out/crate-$cpu
  rm -rf "$dir"
  wrap=$(bash .ci/coherence-run --cpu "$cpu" --out "$dir" --show 5 --wrap-only) || return 1
  ci_cross "$target"
  say "$target -cpu $cpu: tests/jit.rs, tests/stress.rs, tests/dynasm-client/tests/dynasm.rs, examples/jit.rs"
  local status=0 run=(env PATH="$wrap:$PATH" "$CI_RUNNER_VAR=$wrap/$CI_QEMU")
  "${run[@]}" cargo test -q --target "$target" --test jit --test stress --test dynasm || status=1
  "${run[@]}" cargo run -q --example jit --target "$target" >/dev/null || status=1
  python3 .ci/coherence.py summarize "$dir" --min-checked 1000 | tail -n 4 || status=1
  return "$status"
}

if want crate; then
  t=$SECONDS
  cargo test -q --no-run --target aarch64-unknown-linux-gnu --test jit --test stress --test dynasm
  cargo test -q --no-run --target riscv64gc-unknown-linux-gnu --test jit --test stress --test dynasm
  for cpu in max cortex-a53 a64fx neoverse-n2; do
    ci_check "crate on aarch64 $cpu" crate_model aarch64-unknown-linux-gnu "$cpu"
  done
  # The QEMU built here accepts the RISC-V prctl (.ci/qemu-patches/), so the crate takes its
  # fence.i path; the mutants below also check the system-call path.
  ICACHE_EXPECT_RISCV_PATH=fence.i ci_check "crate on riscv64 (fence.i path)" \
    crate_model riscv64gc-unknown-linux-gnu rv64
  say "crate under the checker in $((SECONDS - t)) s"
fi

# One mutant: sed EXPR applied to FILE in a fresh copy of the crate; tests/jit.rs under the
# checker must report CLASS. The copy always lives at the same path, with its own target
# folder: cargo judges freshness by the paths and times of the sources it last built. One test
# at a time: another test's membarrier would synchronise every thread and could hide a defect.
mutant() { # name target cpu file sed-expr class
  local name=$1 target=$2 cpu=$3 file=$4 expr=$5 class=$6 m=$out/mutant dir wrap
  rm -rf "$m/src" "$m/arch" "$m/tests" "$m/examples" "$m/benches"
  mkdir -p "$m"
  cp -r Cargo.toml Cargo.lock .cargo src arch tests examples benches "$m/"
  sed -i "$expr" "$m/$file"
  if cmp -s "$file" "$m/$file"; then
    ci_fail "mutant $name: the edit did not apply to $file"
    return
  fi
  dir=$out/mutant-$name
  rm -rf "$dir"
  wrap=$(bash .ci/coherence-run --cpu "$cpu" --out "$dir" --show 0 --wrap-only)
  ci_cross "$target"
  (cd "$m" && env PATH="$wrap:$PATH" "$CI_RUNNER_VAR=$wrap/$CI_QEMU" CARGO_TARGET_DIR="$PWD/target" \
    cargo test -q --target "$target" --test jit -- --test-threads=1 >"$dir.log" 2>&1) || true
  local got ok=0 pass fail
  got=$(python3 .ci/coherence.py summarize "$dir" | tail -n 1)
  if [ "$class" = none ]; then
    # A forced path rather than a defect: it must be clean, and must have run.
    grep -q ' 0 findings' <<<"$got" && grep -q 'test result: ok' "$dir.log" &&
      ! grep -q 'FAILED' "$dir.log" && ok=1
    pass="variant $name clean on $cpu" fail="variant $name on $cpu"
  else
    grep -q "$class=" <<<"$got" && ok=1
    pass="mutant $name caught on $cpu" fail="mutant $name NOT caught on $cpu (expected $class)"
  fi
  if [ "$ok" = 1 ]; then ci_pass "$pass: ${got#coherence: }"; else
    ci_fail "$fail: ${got#coherence: }"
    tail -n 20 "$dir.log"
  fi
}

if want mutants; then
  t=$SECONDS
  say "mutants of the crate"
  # The edits reach every path (one line, two lines, a walk, a batch): the instructions in
  # arch/, or the barriers of the one `sequence` in src/clear/aarch64.rs and of the one block
  # that walks both caches of most cores (`sync_lines` in arch/aarch64.rs).
  mutant ic-stride-64 aarch64-unknown-linux-gnu max arch/aarch64.rs \
    's/^    unsafe { walk_lines!("ic ivau", first, more, line_log2) }$/    unsafe { walk_lines!("ic ivau", first \& !63, ((first + (more << line_log2) + (1 << line_log2) - 1) >> 6) - (first >> 6), 6) }/; s/^            walk_text!("ic ivau", "sub"),$/            "lsr {n}, {n}, #1", "mov {s}, #64", walk_text!("ic ivau", "sub"),/' \
    no-invalidate
  mutant no-clean aarch64-unknown-linux-gnu cortex-a53 arch/aarch64.rs \
    's/^    unsafe { walk_lines!("dc cvau", first, more, line_log2) }$/    let _ = (first, more, line_log2);/; s/^    unsafe { asm!("dc cvau, {}", in(reg) addr, options(nostack, preserves_flags)) };$/    let _ = addr;/; s/^            walk_text!("dc cvau", "add"),$/            walk_text!("orr xzr, xzr", "add"),/' \
    no-clean
  mutant no-dsb-between aarch64-unknown-linux-gnu a64fx src/clear/aarch64.rs \
    '/\/\/ Always: it also orders the stores/{n;d}' invalidate-before-clean
  mutant no-dsb-between-walk aarch64-unknown-linux-gnu max arch/aarch64.rs \
    '/\/\/ Completes the cleans (and orders the stores of the code)/{n;d}' invalidate-before-clean
  mutant no-isb aarch64-unknown-linux-gnu neoverse-n2 src/clear/aarch64.rs \
    's/^ *arch::isb();$//' no-context-sync-writer
  mutant no-isb-walk aarch64-unknown-linux-gnu max arch/aarch64.rs \
    '/^            "isb",$/d' no-context-sync-writer
  # Not a defect: every QEMU model has equal D- and I-line sizes, so the path for cores whose
  # sizes differ is forced here (its own geometry for each walk) and must be clean.
  mutant two-line-sizes aarch64-unknown-linux-gnu max src/plan.rs \
    's/let plain = match (d == i \&\& !ctr.dic(), ctr.idc()) {/let plain = match (false, ctr.idc()) {/; s/self.ctr().dcache_line() == self.ctr().icache_line()/false/' none
  mutant local-sync-nothing aarch64-unknown-linux-gnu cortex-a53 src/local/instruction.rs \
    's/^    crate::arch::local_sync();$//' no-context-sync-other
  # The system-call path (a kernel that refuses the prctl) forced, clean; with flags 1; then
  # the fence.i path without its fence.i, in clear_cache and in pipeline_flush_local.
  mutant riscv-prctl-refused riscv64gc-unknown-linux-gnu rv64 src/clear/riscv_linux.rs \
    's/match crate::os::riscv_enable_user_fence_i() {/match Err::<(), i32>(22) {/' none
  mutant flags-1 riscv64gc-unknown-linux-gnu rv64 src/clear/riscv_linux.rs \
    's/riscv_flush_icache(span.start(), span.end(), 0)/riscv_flush_icache(span.start(), span.end(), 1)/; s/match crate::os::riscv_enable_user_fence_i() {/match Err::<(), i32>(22) {/' \
    fence-i-other-hart
  mutant no-fence-i riscv64gc-unknown-linux-gnu rv64 src/clear/riscv_linux.rs \
    '/^        crate::arch::fence_i();$/d' no-fence-i
  mutant local-fence-i-nothing riscv64gc-unknown-linux-gnu rv64 src/local/riscv_linux.rs \
    '/^            crate::arch::fence_i();$/d' fence-i-other-hart
  say "mutants in $((SECONDS - t)) s"
fi

if want peers; then
  t=$SECONDS
  say "peers"
  if (cd benches/coherence-peers && cargo fmt --check &&
    for target in aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu; do
      cargo clippy -q --release --ignore-rust-version --target "$target" -- -D warnings &&
        cargo build -q --release --ignore-rust-version --target "$target" || exit 1
    done); then
    ci_pass "peers program builds, formatted and lint-clean"
  else
    ci_fail "peers program build, format or lint"
  fi
  bin=benches/coherence-peers/target
  if python3 .ci/coherence.py peers --run .ci/coherence-run \
    --aarch64 "$bin/aarch64-unknown-linux-gnu/release/coherence-peers" \
    --riscv64 "$bin/riscv64gc-unknown-linux-gnu/release/coherence-peers" \
    --markdown "$out/peers.md" ${COHERENCE_UPDATE:+--update "$COHERENCE_UPDATE"}; then
    ci_pass "peers table matches the known defects"
  else
    ci_fail "peers table"
  fi
  say "peers in $((SECONDS - t)) s"
fi

say "stage took $((SECONDS - t0)) s"
ci_summary
