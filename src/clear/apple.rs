//! Apple platforms (macOS, iOS, tvOS, watchOS, visionOS; AArch64 and x86-64).
//!
//! `clear_cache` calls libSystem's `sys_icache_invalidate(start, len)` (`<libkern/OSCacheControl.h>`),
//! the platform's documented way to make written code executable; compiler-rt's `__clear_cache`
//! does the same on Apple. The crate never reads `CTR_EL0` here (reported to fault on macOS) and
//! issues no cache-maintenance instruction itself. On x86-64 the caches are coherent; the call is
//! kept because it is the platform's contract (and costs a function call).
//!
//! The cross-thread flush is in `src/flush/unsupported.rs`.

use crate::plan::Span;
use crate::{CacheInfo, Error, Maintenance};
use core::ffi::c_void;

// libSystem is linked into every Darwin process (the `libc` crate links it too).
extern "C" {
    /// `void sys_icache_invalidate(void *start, size_t len);` Cannot fail.
    fn sys_icache_invalidate(start: *mut c_void, len: usize);
}

/// # Safety
/// The range must be mapped and readable (the caller's contract in `clear_cache`).
#[inline]
pub unsafe fn clear_range(span: Span) -> Result<(), Error> {
    // SAFETY: the caller guarantees the range is mapped; the function only maintains caches for
    // it (the pointer is `void *` in C but nothing is written through it).
    unsafe { sys_icache_invalidate(span.start() as *mut c_void, span.len()) };
    Ok(())
}

/// Reported as [`Maintenance::LibraryCall`]: libSystem does the work and the crate does not see
/// how, so on AArch64 the line sizes and flags stay unknown. x86-64 caches are coherent.
pub fn cache_info() -> CacheInfo {
    let coherent = cfg!(target_arch = "x86_64").then_some(true);
    CacheInfo {
        maintenance: Maintenance::LibraryCall,
        dcache_line: None,
        icache_line: None,
        idc: coherent,
        dic: coherent,
        l1_icache: None,
    }
}
