//! Apple platforms (macOS, iOS, tvOS, watchOS, visionOS; AArch64 and x86-64).
//!
//! `clear_cache` calls libSystem's `sys_icache_invalidate(start, len)` (`<libkern/OSCacheControl.h>`),
//! the platform's documented way to make written code executable; compiler-rt's `__clear_cache`
//! does the same on Apple. The crate never reads `CTR_EL0` here (reported to fault on macOS) and
//! issues no cache-maintenance instruction itself. On x86-64 the caches are coherent; the call is
//! kept because it is the platform's contract (and costs a function call).
//!
//! `pipeline_flush_mt` returns [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported): Darwin
//! has no `membarrier` and no `FlushProcessWriteBuffers`. The one known stand-in, used by .NET's
//! runtime (its PAL's `FlushProcessWriteBuffers`) and HotSpot on macOS, walks every thread of the
//! task (`task_threads`) and asks the kernel for its registers
//! (`thread_get_register_pointer_values`); both describe it as forcing each thread to emit a
//! *memory* barrier. Nothing Apple documents says it synchronises instruction fetch, it costs
//! Mach calls per thread, and it cannot be tested here, so this crate does not claim it. A JIT on Apple AArch64 makes other threads resynchronise itself: each thread that
//! will run new code executes an `isb` after it observes the publication (for example with an
//! acquire load of the entry point in a handshake), which is what a context-synchronisation
//! event requires.

use crate::{CacheInfo, Error, Maintenance, PipelineFlush};
use core::ffi::c_void;

// libSystem is linked into every Darwin process (the `libc` crate links it too).
extern "C" {
    /// `void sys_icache_invalidate(void *start, size_t len);` Cannot fail.
    fn sys_icache_invalidate(start: *mut c_void, len: usize);
}

/// # Safety
/// The range must be mapped and readable (the caller's contract in `clear_cache`).
#[inline]
pub unsafe fn clear_range(start: usize, len: usize, _last: usize) -> Result<(), Error> {
    // SAFETY: the caller guarantees the range is mapped; the function only maintains caches for
    // it (the pointer is `void *` in C but nothing is written through it).
    unsafe { sys_icache_invalidate(start as *mut c_void, len) };
    Ok(())
}

/// Reported as [`Maintenance::SystemCall`]: the OS's library does the work and the crate does not
/// see how (line sizes stay unknown).
pub fn cache_info() -> CacheInfo {
    let coherent = cfg!(target_arch = "x86_64");
    CacheInfo {
        maintenance: Maintenance::SystemCall,
        dcache_line: None,
        icache_line: None,
        idc: coherent,
        dic: coherent,
    }
}

/// No mechanism the crate can stand behind on Darwin: see the module documentation.
pub fn pipeline_flush_mt() -> Result<(), Error> {
    Err(Error::unsupported("pipeline_flush_mt", 0))
}

/// As [`pipeline_flush_mt`].
pub fn prepare_pipeline_flush() -> Result<PipelineFlush, Error> {
    Err(Error::unsupported("pipeline_flush_mt", 0))
}
