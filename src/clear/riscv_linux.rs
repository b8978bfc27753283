//! Linux RISC-V: the kernel's `riscv_flush_icache`, which reaches every hart running the process.

use crate::{plan, CacheInfo, Error, Maintenance};

/// One `riscv_flush_icache(start, end, 0)`: flags 0 reaches every hart running the
/// process (wasmtime's flags 1 is the caller's hart only).
/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
#[inline]
pub unsafe fn clear_range(start: usize, _len: usize, last: usize) -> Result<(), Error> {
    crate::os::riscv_flush_icache(start, last.saturating_add(1), 0)
        .map_err(|e| Error::os("riscv_flush_icache(flags = 0)", e))
}

/// One system call for the whole batch: the kernel flushes every hart whatever the
/// range, which it takes as a hint only.
///
/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(
    ranges: I,
) -> Result<(), Error> {
    let mut bounds: Option<(usize, usize)> = None;
    for (start, len) in ranges {
        if let Some(Ok(last)) = plan::last_byte(start, len) {
            let (lo, hi) = bounds.unwrap_or((start, last));
            bounds = Some((lo.min(start), hi.max(last)));
        }
    }
    match bounds {
        None => Ok(()),
        // SAFETY: forwarded from `clear_cache_many`.
        Some((lo, hi)) => unsafe { clear_range(lo, hi - lo + 1, hi) },
    }
}

pub fn cache_info() -> CacheInfo {
    CacheInfo {
        maintenance: Maintenance::SystemCall,
        dcache_line: None,
        icache_line: None,
        idc: false,
        dic: false,
    }
}
