#!/usr/bin/env bash
# Exact instruction accounting: runs examples/probe.rs under qemu-user with the counting plugin
# (tests/qemu-plugin/icount.c) on three AArch64 CPU models (32-, 64- and 256-byte lines) and on
# RISC-V, and checks that every call executes exactly the cache maintenance, barriers and system
# calls the architecture requires: one `dc cvau` (none where CTR_EL0.IDC is set: neoverse-n2,
# on the QEMU 10 of .ci/qemu10.sh) and one `ic ivau` per line, 2 `dsb ish` and
# 1 `isb` per call or batch, no CTR_EL0 read after the first; on RISC-V one `ecall` per call
# where the kernel refuses the fence.i prctl (Debian's qemu-user) and one `fence.i` and no
# `ecall` where it accepts it (the QEMU 10 of .ci/qemu10.sh).
# The checks live in .ci/icount.py. Ends with "icount: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs the cross toolchains, qemu-user and rustup targets when missing; idempotent.
# shellcheck source=setup.sh
. .ci/setup.sh

out=target/icount
mkdir -p "$out"

echo "== icount: building the plugin"
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$out/icount.so" tests/qemu-plugin/icount.c

echo "== icount: assembling the plugin's self-test programs"
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
aarch64-linux-gnu-as "$out/selftest-aarch64.s" -o "$out/selftest-aarch64.o"
aarch64-linux-gnu-ld -static "$out/selftest-aarch64.o" -o "$out/selftest-aarch64"
riscv64-linux-gnu-as -march=rv64g "$out/selftest-riscv64.s" -o "$out/selftest-riscv64.o"
riscv64-linux-gnu-ld -static "$out/selftest-riscv64.o" -o "$out/selftest-riscv64"

# The probe is compiled with rustc against the release rlib rather than with
# `cargo build --example`, which would also build every dev-dependency (criterion, proptest)
# for each cross target: minutes of CPU for nothing the probe uses. Same optimisation level.
build_probe() {
  local target=$1 linker=$2 rlib
  echo "== icount: building icache (release) and the probe for $target"
  rlib=$(.ci/icache-rlib.sh "$target")
  rustc --edition 2021 --crate-type bin --crate-name probe -C opt-level=3 \
    --target "$target" -C linker="$linker" \
    --extern icache="$rlib" -L dependency="$(dirname "$rlib")/deps" \
    examples/probe.rs -o "$out/probe-$target"
}
build_probe aarch64-unknown-linux-gnu aarch64-linux-gnu-gcc
build_probe riscv64gc-unknown-linux-gnu riscv64-linux-gnu-gcc

echo "== icount: measuring (2 runs per configuration)"
start=$SECONDS
status=0
# RISC-V with the fence.i prctl accepted runs on the QEMU 10 the coherence stage also uses,
# with the same counter built against that QEMU's header.
qemu10=$(bash .ci/qemu10.sh) || { echo "icount: QEMU 10 build failed"; echo "icount: 0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC2046 # pkg-config prints several flags
gcc -O2 -Wall -Wextra -Werror -shared -fPIC -DICOUNT_QEMU_HEADER -I"$qemu10/include" \
  $(pkg-config --cflags glib-2.0) -o "$out/icount10.so" tests/qemu-plugin/icount.c
python3 .ci/icount.py --plugin "$out/icount.so" --qemu10 "$qemu10" --plugin10 "$out/icount10.so" \
  --probe-aarch64 "$out/probe-aarch64-unknown-linux-gnu" \
  --probe-riscv64 "$out/probe-riscv64gc-unknown-linux-gnu" \
  --selftest-aarch64 "$out/selftest-aarch64" --selftest-riscv64 "$out/selftest-riscv64" ||
  status=$?
echo "== icount: measured in $((SECONDS - start)) s"
exit "$status"
