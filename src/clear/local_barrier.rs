//! One unranged barrier on the calling core: bare-metal RISC-V and LoongArch.

use crate::plan::Span;
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
pub unsafe fn clear_range(_span: Span) -> Result<(), Error> {
    local_barrier();
    Ok(())
}

/// One barrier covers every range: it is not ranged.
///
/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
pub unsafe fn clear_ranges<B: super::Batch>(batch: B) -> Result<(), Error> {
    if super::checked(batch)?.next().is_some() {
        local_barrier();
    }
    Ok(())
}

/// LoongArch: coherent caches and one barrier. Bare-metal RISC-V: `fence.i` does whatever the
/// hart's caches need, which the crate cannot see.
pub fn cache_info() -> CacheInfo {
    let loongarch = cfg!(target_arch = "loongarch64");
    CacheInfo {
        maintenance: if loongarch {
            Maintenance::Barrier
        } else {
            Maintenance::Instructions
        },
        dcache_line: None,
        icache_line: None,
        idc: loongarch.then_some(true),
        dic: loongarch.then_some(true),
        l1_icache: None,
    }
}
