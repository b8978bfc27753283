//! Linux 32-bit Arm: cache maintenance is privileged, so the kernel's `cacheflush` does it.

use crate::plan::Span;
use crate::{CacheInfo, Error, ErrorKind, Maintenance};

/// The kernel's `cacheflush` does the clean, invalidate and barriers for the range.
///
/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
#[inline]
pub unsafe fn clear_range(span: Span) -> Result<(), Error> {
    crate::os::arm_cacheflush(span.start(), span.end())
        .map_err(|e| Error::new(ErrorKind::Os, "cacheflush", e))
}

pub fn cache_info() -> CacheInfo {
    CacheInfo {
        maintenance: Maintenance::SystemCall,
        dcache_line: None,
        icache_line: None,
        idc: None,
        dic: None,
        l1_icache: None,
    }
}
