#!/usr/bin/env bash
# Regenerates BENCHMARKS.md and benches/instructions.svg: `bash .ci/bench.sh`.
# 1. criterion on the host (`cargo bench -p icache-benches --features peers --bench clear_cache
#    -- --noplot`, short times);
# 2. benches/src/bin/peers_probe.rs (release) for AArch64, RISC-V and x86-64, run under qemu-user
#    with the counting plugin tests/qemu-plugin/icount.c on four AArch64 CPU models and two
#    RISC-V kernels (prctl refused, accepted: the QEMU 10 of .ci/qemu10.sh); exact per-call
#    counts for icache and every peer (.ci/qemucount.py runs them);
# 3. .ci/bench.py writes the tables, the chart and the target checks.
# Not part of the test suite: it measures, it does not assert. Takes about 15 minutes on a
# fresh 2-core machine (most of it compiling the peers for three targets).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init bench
start=$SECONDS
step() { printf '== bench: %s (at %ss)\n' "$*" "$((SECONDS - start))"; }

step "setup (cross toolchains, qemu-user, rustup targets; skipped when present)"
ci_setup
# wasmtime 50 declares rust-version 1.97.
build=(--quiet -p icache-benches --features peers --ignore-rust-version)

for target in aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu; do
  step "building peers_probe (release) for $target"
  cargo build "${build[@]}" --release --bin peers_probe --target "$target"
done
# The host build shares its dependencies with `cargo bench` below.
step "building peers_probe (release) for the host (x86-64)"
cargo build "${build[@]}" --release --bin peers_probe

bench_args="--noplot --warm-up-time 0.3 --measurement-time 1"
step "host timings: cargo bench --bench clear_cache -- $bench_args"
# Fresh results only: criterion keeps every benchmark it ever ran under target/criterion.
rm -rf target/criterion
# Absolute: cargo runs the bench in the member's directory.
# shellcheck disable=SC2086
ICACHE_BENCH_PAIRED=$PWD/target/criterion/flush_paired.json \
  cargo bench "${build[@]}" --bench clear_cache -- $bench_args

step "instruction counts under qemu-user, and BENCHMARKS.md"
python3 .ci/bench.py --probe-aarch64 target/aarch64-unknown-linux-gnu/release/peers_probe \
  --probe-riscv64 target/riscv64gc-unknown-linux-gnu/release/peers_probe \
  --probe-x86_64 target/release/peers_probe \
  --criterion target/criterion --bench-args "$bench_args" \
  --out BENCHMARKS.md --svg benches/instructions.svg

step "done"
