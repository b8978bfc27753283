//! Anything else (PowerPC, FreeBSD RISC-V, ...): no mechanism is known, so say so rather than
//! pretend.

use crate::{CacheInfo, Error, Maintenance};

/// # Safety
/// No range wraps, and every byte of the range is mapped readable (the contract of
/// `clear_cache`); nothing is touched here anyway.
pub unsafe fn clear_range(_start: usize, _len: usize, _last: usize) -> Result<(), Error> {
    Err(Error::unsupported("clear_cache", 0))
}

/// # Safety
/// As for [`clear_range`], for every range.
pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(
    mut ranges: I,
) -> Result<(), Error> {
    if ranges.any(|(_, len)| len != 0) {
        Err(Error::unsupported("clear_cache_many", 0))
    } else {
        Ok(())
    }
}

pub fn cache_info() -> CacheInfo {
    CacheInfo {
        maintenance: Maintenance::Unsupported,
        dcache_line: None,
        icache_line: None,
        idc: false,
        dic: false,
    }
}
