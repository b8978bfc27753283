//! LoongArch64: the barriers for instruction-fetch coherence.
//!
//! LoongArch keeps instruction caches coherent with data caches in hardware, across cores (see
//! `src/clear/local_barrier.rs`); software only orders its own stores before its own fetches. `dbar 0` is the
//! full completion barrier for loads and stores; `ibar 0` makes instruction fetches after it see
//! the stores before it (LoongArch Reference Manual, volume 1, "DBAR" and "IBAR").

use core::arch::asm;

/// `dbar 0` then `ibar 0` on the calling core.
#[inline(always)]
pub fn dbar_ibar() {
    // SAFETY: both barriers take only a hint operand and cannot fault. Not `nomem`: they must
    // stay after the stores of the code, which the compiler must not sink past them.
    unsafe { asm!("dbar 0", "ibar 0", options(nostack, preserves_flags)) };
}

/// `ibar 0` on the calling core: its later instruction fetches see the stores it has observed.
#[inline(always)]
pub fn local_sync() {
    // SAFETY: `ibar` takes only a hint operand and cannot fault. Not `nomem`: it must stay after
    // the loads that observed the new code.
    unsafe { asm!("ibar 0", options(nostack, preserves_flags)) };
}
