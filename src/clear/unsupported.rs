//! Anything else (PowerPC, FreeBSD RISC-V, ...): no mechanism is known, so say so rather than
//! pretend.

use crate::plan::Span;
use crate::{CacheInfo, Error, ErrorKind, Maintenance};

/// # Safety
/// No range wraps, and every byte of the range is mapped readable (the contract of
/// `clear_cache`); nothing is touched here anyway.
pub unsafe fn clear_range(_span: Span) -> Result<(), Error> {
    Err(Error::new(ErrorKind::Unsupported, "clear_cache", 0))
}

/// # Safety
/// As for [`clear_range`], for every range.
pub unsafe fn clear_ranges<B: super::Batch>(batch: B) -> Result<(), Error> {
    if super::checked(batch)?.next().is_some() {
        Err(Error::new(ErrorKind::Unsupported, "clear_cache_many", 0))
    } else {
        Ok(())
    }
}

pub fn cache_info() -> CacheInfo {
    CacheInfo {
        maintenance: Maintenance::Unsupported,
        dcache_line: None,
        icache_line: None,
        idc: None,
        dic: None,
        l1_icache: None,
    }
}
