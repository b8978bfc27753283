//! Linux RISC-V: the kernel's `riscv_flush_icache`, which reaches every hart running the process.

use crate::plan::Span;
use crate::{CacheInfo, Error, ErrorKind, Maintenance};

/// One `riscv_flush_icache(start, end, 0)`: flags 0 reaches every hart running the
/// process (wasmtime's flags 1 is the caller's hart only).
///
/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
#[inline]
pub unsafe fn clear_range(span: Span) -> Result<(), Error> {
    crate::os::riscv_flush_icache(span.start(), span.end(), 0)
        .map_err(|e| Error::new(ErrorKind::Os, "riscv_flush_icache(flags = 0)", e))
}

/// One system call for the whole batch: the kernel flushes every hart whatever the
/// range, which it takes as a hint only.
///
/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
pub unsafe fn clear_ranges<I: Iterator<Item = Span> + Clone>(ranges: I) -> Result<(), Error> {
    match ranges.reduce(Span::hull) {
        None => Ok(()),
        // SAFETY: forwarded from `clear_cache_many`.
        Some(all) => unsafe { clear_range(all) },
    }
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
