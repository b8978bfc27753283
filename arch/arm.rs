//! 32-bit Arm: the calling core's context synchronisation.
//!
//! Cache maintenance is privileged on 32-bit Arm Linux (the crate asks the kernel, see
//! `src/clear/arm_linux.rs`), but `isb` is allowed in user mode from ARMv7 on (Arm ARM for
//! ARMv7-A, "ISB"): it makes the core fetch the instructions after it anew. Stable Rust has no
//! cfg for the architecture version, so the caller checks it at run time (`src/local/arm_linux.rs`)
//! and the assembler is told ARMv7 for this one instruction.

use core::arch::asm;

/// `isb sy` on the calling core.
///
/// # Safety
/// The core must implement ARMv7 or later (an older one raises an undefined-instruction
/// exception).
#[inline(always)]
pub unsafe fn isb_v7() {
    // SAFETY: the caller checked the core is ARMv7+; `isb` has no operands and cannot fault at
    // PL0 there. Not `nomem`: it must stay after the loads that observed the new code.
    unsafe { asm!(".arch armv7-a", "isb sy", options(nostack, preserves_flags)) };
}
