//! s390x: serialising the calling CPU.
//!
//! The caches are coherent with instruction fetch, but a CPU may run instructions it prefetched
//! before another CPU stored new ones. `bcr 15,0` is a serialising operation
//! (z/Architecture Principles of Operation, chapter 5, "Serialization"): the CPU completes its
//! earlier accesses and discards prefetched instructions before it continues.

use core::arch::asm;

/// `bcr 15,0` on the calling CPU.
#[inline(always)]
pub fn local_sync() {
    // SAFETY: `bcr 15,0` branches nowhere (register 0 means no branch) and cannot fault. Not
    // `nomem`: it must stay after the loads that observed the new code.
    unsafe { asm!("bcr 15,0", options(nostack, preserves_flags)) };
}
