//! Windows (x86-64, AArch64): the two documented kernel32 calls, via `windows-sys`.
//!
//! * `FlushInstructionCache(GetCurrentProcess(), ptr, len)` per range. Microsoft documents it as
//!   required after generating or modifying code, on every architecture; on AArch64 the kernel
//!   does the clean/invalidate work (user mode cannot know if it may, so the crate never issues
//!   `dc`/`ic` itself there).
//! * `FlushProcessWriteBuffers()` for the cross-thread flush: it makes every processor that runs
//!   a thread of the process take an inter-processor interrupt. Returning from that interrupt is
//!   a context-synchronisation event on AArch64 and serialising on x86 (`iretq`), the same
//!   argument as Linux's `membarrier(PRIVATE_EXPEDITED)`; threads not running pass through the
//!   kernel's context switch (and its exception return) before they run again. The function
//!   returns nothing and has no failure mode: once it returns, the interrupts have been taken,
//!   so returning `Ok(())` reports a flush that really happened. It is what .NET's runtime
//!   uses for the same purpose on Windows.

use crate::plan::Span;
use crate::{CacheInfo, Error, ErrorKind, Maintenance};
use windows_sys::Win32::Foundation::GetLastError;
use windows_sys::Win32::System::Diagnostics::Debug::FlushInstructionCache;
use windows_sys::Win32::System::Threading::GetCurrentProcess;

/// One `FlushInstructionCache` for the span.
///
/// # Safety
/// The range must be part of this process's address space (the caller's contract in
/// `clear_cache`); the kernel checks it anyway and fails the call rather than fault.
#[inline]
pub unsafe fn clear_range(span: Span) -> Result<(), Error> {
    let (start, len) = (span.start(), span.len());
    // SAFETY: `GetCurrentProcess` returns a pseudo-handle that needs no closing;
    // `FlushInstructionCache` reads no memory of ours, it only maintains the caches for the range.
    let ok = unsafe { FlushInstructionCache(GetCurrentProcess(), start as *const _, len) };
    if ok != 0 {
        Ok(())
    } else {
        // SAFETY: reads this thread's last-error value, set by the failed call just above.
        let code = unsafe { GetLastError() };
        Err(Error::new(
            ErrorKind::Os,
            "FlushInstructionCache",
            code as i32,
        ))
    }
}

pub fn cache_info() -> CacheInfo {
    // x86 caches are coherent (Intel SDM vol. 3A, "Self-modifying code"): the call stays because
    // Windows documents it as required. On AArch64 the kernel does the work: the crate does not
    // read `CTR_EL0` there and does not know the answers.
    let coherent = cfg!(any(target_arch = "x86_64", target_arch = "x86")).then_some(true);
    CacheInfo {
        maintenance: Maintenance::SystemCall,
        dcache_line: None,
        icache_line: None,
        idc: coherent,
        dic: coherent,
        l1_icache: None,
    }
}
