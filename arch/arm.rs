//! 32-bit Arm (ARMv7-A and later): the calling core's context synchronisation.
//!
//! Cache maintenance is privileged on 32-bit Arm Linux (the crate asks the kernel, see
//! `src/clear/arm_linux.rs`), but `isb` is allowed in user mode (Arm ARM for ARMv7-A, "ISB"): it makes
//! the core fetch the instructions after it anew.

use core::arch::asm;

/// `isb sy` on the calling core.
#[inline(always)]
pub fn local_sync() {
    // SAFETY: `isb` has no operands and cannot fault at PL0 on ARMv7. Not `nomem`: it must stay
    // after the loads that observed the new code.
    unsafe { asm!("isb sy", options(nostack, preserves_flags)) };
}
