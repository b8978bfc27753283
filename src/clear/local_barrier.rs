//! One unranged barrier on the calling core: bare-metal RISC-V and LoongArch.

use crate::{CacheInfo, Error, Maintenance};

// One unranged barrier on the calling core does the work:
// * bare-metal RISC-V: `fence.i`, on the calling hart only. Every other hart that will run
//   the code must execute its own `fence.i` after it observes the publication.
// * LoongArch: the instruction caches are kept coherent with the data caches in hardware,
//   on every core; only this core's instruction hazard remains (Linux's
//   `arch/loongarch/mm/cache.c` says as much, and its `flush_icache_range` sends no IPI). `dbar 0` completes the stores of the code,
//   `ibar 0` makes this core's later fetches see them.
#[cfg(target_arch = "loongarch64")]
use crate::arch::dbar_ibar as local_barrier;
#[cfg(target_arch = "riscv64")]
use crate::arch::fence_i as local_barrier;

/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
#[inline]
pub unsafe fn clear_range(_start: usize, _len: usize, _last: usize) -> Result<(), Error> {
    local_barrier();
    Ok(())
}

/// One barrier covers every range: it is not ranged.
///
/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(
    mut ranges: I,
) -> Result<(), Error> {
    if ranges.any(|(_, len)| len != 0) {
        local_barrier();
    }
    Ok(())
}

pub fn cache_info() -> CacheInfo {
    let coherent = cfg!(target_arch = "loongarch64");
    CacheInfo {
        maintenance: Maintenance::Instructions,
        dcache_line: None,
        icache_line: None,
        idc: coherent,
        dic: coherent,
    }
}
