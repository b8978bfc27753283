//! Linux RISC-V: a user `fence.i` where the kernel keeps it valid, else the kernel's
//! `riscv_flush_icache`, which reaches every hart running the process.
//!
//! `fence.i` acts on the hart that runs it. Linux does not flush a hart when it switches between
//! two threads of one process, so a thread that ran `fence.i` and then migrates to a hart that
//! last ran another thread of the process may fetch stale bytes there. Since Linux 6.10,
//! `prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, PR_RISCV_CTX_SW_FENCEI_ON, PR_RISCV_SCOPE_PER_PROCESS)`
//! makes the kernel run `fence.i` on the hart any thread of the process lands on
//! (`arch/riscv/mm/context.c`), and the user `fence.i` then holds for the thread that ran it
//! (HotSpot made the same switch, JDK-8339771). The crate asks once per process and remembers the
//! answer, refusal included:
//! * enabled: `clear_cache` is one `fence.i`, no system call; other threads need
//!   `pipeline_flush_mt` (or their own `pipeline_flush_local`), as on every architecture;
//! * refused (Linux before 6.10 answers `EINVAL`; a seccomp filter): `riscv_flush_icache(start,
//!   end, 0)`, every hart. Flags 1 (this hart only) would not be safe even for the calling thread,
//!   for the migration reason above.

use crate::plan::Span;
use crate::{CacheInfo, Error, ErrorKind, Maintenance};
use core::sync::atomic::{AtomicI32, Ordering};

/// 0: not asked yet; 1: enabled; negative: refused with that errno.
static USER_FENCE_I: AtomicI32 = AtomicI32::new(0);

#[cold]
fn enable_user_fence_i() -> i32 {
    let state = match crate::os::riscv_enable_user_fence_i() {
        Ok(()) => 1,
        Err(errno) => -errno.max(1),
    };
    // Racing first callers all make the same request and store the same answer.
    USER_FENCE_I.store(state, Ordering::Relaxed);
    state
}

/// Whether a user `fence.i` is valid for the calling thread in this process: `Err(errno)` if
/// the kernel refused. Asks the kernel on the first call only.
#[inline]
pub fn user_fence_i() -> Result<(), i32> {
    match USER_FENCE_I.load(Ordering::Relaxed) {
        1 => Ok(()),
        0 => match enable_user_fence_i() {
            1 => Ok(()),
            refused => Err(-refused),
        },
        refused => Err(-refused),
    }
}

/// `fence.i`, or one `riscv_flush_icache(start, end, 0)` where the kernel refused (flags 0
/// reaches every hart running the process; wasmtime's flags 1 is the caller's hart only).
///
/// # Safety
/// Every byte of the span is mapped readable (the contract of `clear_cache`).
#[inline]
pub unsafe fn clear_range(span: Span) -> Result<(), Error> {
    if user_fence_i().is_ok() {
        crate::arch::fence_i();
        return Ok(());
    }
    crate::os::riscv_flush_icache(span.start(), span.end(), 0)
        .map_err(|e| Error::new(ErrorKind::Os, "riscv_flush_icache(flags = 0)", e))
}

/// One `fence.i`, or one system call, for the whole batch: neither takes a range that matters
/// (the kernel takes it as a hint only).
///
/// # Safety
/// Every byte of every span is mapped readable (the contract of `clear_cache_many`).
pub unsafe fn clear_ranges<B: super::Batch>(batch: B) -> Result<(), Error> {
    match super::checked(batch)?.reduce(Span::hull) {
        None => Ok(()),
        // SAFETY: forwarded from `clear_cache_many`.
        Some(all) => unsafe { clear_range(all) },
    }
}

/// Asks the kernel (once per process, as `clear_cache` does) which of the two paths applies.
pub fn cache_info() -> CacheInfo {
    CacheInfo {
        maintenance: if user_fence_i().is_ok() {
            Maintenance::Instructions
        } else {
            Maintenance::SystemCall
        },
        dcache_line: None,
        icache_line: None,
        idc: None,
        dic: None,
        l1_icache: None,
    }
}
