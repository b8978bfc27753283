//! RISC-V: the raw instruction for instruction-fetch coherence.
//!
//! `fence.i` (the Zifencei extension, RISC-V Unprivileged ISA, chapter "Zifencei") orders this
//! hart's earlier stores before its later instruction fetches. It acts on the executing hart
//! only: under Linux, where a thread can migrate and other harts run other threads, the crate
//! asks the kernel instead (`riscv_flush_icache`, see `src/clear/riscv_linux.rs`), and uses a user `fence.i`
//! only once `PR_RISCV_SET_ICACHE_FLUSH_CTX` makes the kernel keep it valid across migration.

use core::arch::asm;

/// `fence.i` on the calling hart.
#[inline(always)]
pub fn fence_i() {
    // SAFETY: `fence.i` has no operands and cannot fault on a hart with Zifencei (every
    // `riscv64gc` target). Not `nomem`: it must stay after the stores of the code.
    unsafe { asm!("fence.i", options(nostack, preserves_flags)) };
}

#[cfg(target_os = "none")]
pub use fence_i as local_sync;
