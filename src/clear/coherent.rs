//! x86, x86-64, s390x: instruction fetch snoops the data caches (Intel SDM vol. 3A,
//! "Self-Modifying Code"; z/Architecture Principles of Operation, "Storage-Operand Fetch
//! References"), so there is nothing to do, and nothing is left once inlined.

use crate::plan::Span;
use crate::{CacheInfo, Error, Maintenance};

/// # Safety
/// No range wraps, and every byte of the range is mapped readable (the contract of
/// `clear_cache`); nothing is touched here anyway.
#[inline(always)]
pub unsafe fn clear_range(_span: Span) -> Result<(), Error> {
    Ok(())
}

/// # Safety
/// As for [`clear_range`], for every range.
#[inline(always)]
pub unsafe fn clear_ranges<B: super::Batch>(batch: B) -> Result<(), Error> {
    super::checked(batch).map(|_| ())
}

pub fn cache_info() -> CacheInfo {
    CacheInfo {
        maintenance: Maintenance::Coherent,
        dcache_line: None,
        icache_line: None,
        idc: Some(true),
        dic: Some(true),
        l1_icache: None,
    }
}
