//! Measurement programs for `icache` (not published). The binaries are the probes that
//! `.ci/icount.sh` and `.ci/bench.sh` run under qemu-user with the counting plugin; the library
//! holds the wrappers whose machine code `.ci/disasm.sh` reads and, with the `peers` feature,
//! what the peers probe and the criterion bench share.

pub mod disasm;
#[cfg(feature = "peers")]
pub mod peers;

/// A no-op that the counting plugin (`tests/qemu-plugin/icount.c`) recognises: with two or more
/// executed, it counts only between the first and the last, so the start-up of the dynamic
/// loader and libc, which varies from run to run on QEMU 10, is left out of every count.
#[inline(never)]
pub fn marker() {
    // SAFETY: an unallocated hint, which executes as a NOP (Arm ARM: HINT); no operands.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!("hint #0x7f", options(nomem, nostack, preserves_flags))
    };
    // SAFETY: a HINT (an `slti` that writes x0, per the RISC-V unprivileged spec): no effect.
    #[cfg(target_arch = "riscv64")]
    unsafe {
        core::arch::asm!(
            "slti x0, x0, 0x5a5",
            options(nomem, nostack, preserves_flags)
        )
    };
}
