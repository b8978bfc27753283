#!/usr/bin/env bash
# Exact instruction accounting: runs benches/src/bin/probe.rs under qemu-user with the counting plugin
# (tests/qemu-plugin/icount.c) on three AArch64 CPU models (32-, 64- and 256-byte lines) and on
# RISC-V, and checks that every call executes exactly the cache maintenance, barriers and system
# calls the architecture requires: one `dc cvau` (none where CTR_EL0.IDC is set: neoverse-n2,
# on the QEMU 10 of .ci/qemu10.sh) and one `ic ivau` per line, 2 `dsb ish` and
# 1 `isb` per call or batch, no CTR_EL0 read after the first; on RISC-V one `ecall` per call
# where the kernel refuses the fence.i prctl (Debian's qemu-user) and one `fence.i` and no
# `ecall` where it accepts it (the QEMU 10 of .ci/qemu10.sh).
# The checks live in .ci/icount.py, the qemu runner in .ci/qemucount.py. Ends with "icount: N passed, M failed".
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
ci_init icount
ci_setup

out=target/icount
mkdir -p "$out"

say "assembling the plugin's self-test programs"
cat >"$out/selftest-aarch64.s" <<'ASM'
    .globl _start
_start:
    adr x1, _start
    mov x2, #3
1:  dc cvau, x1
    ic ivau, x1
    subs x2, x2, #1
    b.ne 1b
    dsb ish
    dsb sy
    ssbb                    // shares the dsb encoding space: must not count as a dsb
    isb
    mrs x3, ctr_el0
    dc civac, x1
    mov x0, #0
    mov x8, #93             // exit
    svc #0
ASM
cat >"$out/selftest-riscv64.s" <<'ASM'
    .globl _start
_start:
    li t0, 2
1:  fence.i
    addi t0, t0, -1
    bnez t0, 1b
    fence
    li a0, 0
    li a7, 93               # exit
    ecall
ASM
# triple:arch:assembler flags
for t in aarch64-unknown-linux-gnu:aarch64: riscv64gc-unknown-linux-gnu:riscv64:-march=rv64g; do
  IFS=: read -r triple arch flags <<<"$t"
  ci_cross "$triple"
  # shellcheck disable=SC2086 # no flags, or one
  "$CI_GNU-as" $flags "$out/selftest-$arch.s" -o "$out/selftest-$arch.o"
  "$CI_GNU-ld" -static "$out/selftest-$arch.o" -o "$out/selftest-$arch"
done

# The probe is a binary of the benches member; without its `peers` feature it depends on icache
# alone, so no peer or dev-dependency is built for the cross targets.
for target in aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu; do
  say "building icache and the probe (release) for $target"
  cargo build --quiet --release -p icache-benches --bin probe --target "$target"
done

say "measuring (2 runs per configuration)"
start=$SECONDS
status=0
# The plugin, and QEMU 10 with the plugin built against it (neoverse-n2, RISC-V with the fence.i
# prctl accepted), are built by .ci/icount.py (.ci/qemucount.py).
python3 .ci/icount.py --out "$out" \
  --probe-aarch64 target/aarch64-unknown-linux-gnu/release/probe \
  --probe-riscv64 target/riscv64gc-unknown-linux-gnu/release/probe \
  --selftest-aarch64 "$out/selftest-aarch64" --selftest-riscv64 "$out/selftest-riscv64" ||
  status=$?
say "measured in $((SECONDS - start)) s"
exit "$status"
