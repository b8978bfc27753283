//! AArch64 with user-space cache maintenance (Linux, Android, FreeBSD, bare metal): the Arm ARM
//! sequence, walked by this crate with the line sizes of `CTR_EL0` (`arch/aarch64.rs` has the
//! instructions, `src/plan.rs` the lines).

use crate::arch;
use crate::{plan, CacheInfo, Error, Maintenance};

cfg_if::cfg_if! {
    if #[cfg(target_os = "none")] {
        /// Bare metal: the code runs at EL1 or above, where the read never traps, and no
        /// OS migrates it between cores, so the running core's own value is read every
        /// time (cores of a big.LITTLE system may differ).
        #[inline(always)]
        fn with_ctr_el0<R>(f: impl FnOnce(plan::CtrEl0) -> R) -> R {
            f(plan::CtrEl0(arch::read_ctr_el0()))
        }
    } else {
        use core::sync::atomic::{AtomicU64, Ordering};

        /// `CTR_EL0`, read once per process: the read can trap to the kernel. Safe to keep
        /// because Linux reports the system-wide safe (smallest) line sizes when cores
        /// differ (`arch/arm64/kernel/cpufeature.c`). FreeBSD lets EL0 read the register
        /// directly (`SCTLR_EL1.UCT`, `sys/arm64/arm64/locore.S`). 0 means "not read
        /// yet": bit 31 of the register is always 1.
        static CTR_EL0: AtomicU64 = AtomicU64::new(0);

        /// Runs `f` with the cached value. The first use in the process runs all of `f`
        /// out of line, after the read: the common path then makes no call and needs no
        /// stack frame (a call in its middle would give it one).
        #[inline(always)]
        fn with_ctr_el0<R>(f: impl FnOnce(plan::CtrEl0) -> R) -> R {
            match CTR_EL0.load(Ordering::Relaxed) {
                0 => read_ctr_el0(f),
                ctr => f(plan::CtrEl0(ctr)),
            }
        }

        #[cold]
        #[inline(never)]
        fn read_ctr_el0<R>(f: impl FnOnce(plan::CtrEl0) -> R) -> R {
            let ctr = arch::read_ctr_el0();
            CTR_EL0.store(ctr, Ordering::Relaxed);
            f(plan::CtrEl0(ctr))
        }
    }
}

/// The whole Arm ARM sequence for a set of ranges, barriers once.
///
/// # Safety
/// No range wraps; every byte is mapped readable.
#[inline(always)]
unsafe fn sync<I: Iterator<Item = (usize, usize)> + Clone>(ranges: I, ctr: plan::CtrEl0) {
    let plans = ranges.filter_map(move |(start, len)| plan::RangePlan::new(start, len, ctr));
    let mut any = false;
    for p in plans.clone() {
        any = true;
        if let Some(w) = p.clean {
            // SAFETY: the caller guarantees the lines are mapped; a walk has count >= 1.
            unsafe { arch::dc_cvau_lines(w.first, w.count - 1, w.line_log2) };
        }
    }
    if !any {
        return;
    }
    // Always: it also orders the stores of the code before the invalidations.
    arch::dsb_ish();
    if !ctr.dic() {
        for p in plans {
            if let Some(w) = p.invalidate {
                // SAFETY: as above.
                unsafe { arch::ic_ivau_lines(w.first, w.count - 1, w.line_log2) };
            }
        }
        arch::dsb_ish();
    }
    arch::isb();
}

/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
#[inline]
pub unsafe fn clear_range(start: usize, len: usize, _last: usize) -> Result<(), Error> {
    // SAFETY: forwarded from `clear_cache`. The iterator is made inside the closure so
    // that only two registers' worth is captured.
    with_ctr_el0(move |ctr| unsafe { sync(core::iter::once((start, len)), ctr) });
    Ok(())
}

/// # Safety
/// No range wraps, and every byte of every range is mapped readable (the contract of
/// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(
    ranges: I,
) -> Result<(), Error> {
    // SAFETY: forwarded from `clear_cache_many`.
    with_ctr_el0(move |ctr| unsafe { sync(ranges, ctr) });
    Ok(())
}

pub fn cache_info() -> CacheInfo {
    with_ctr_el0(|ctr| CacheInfo {
        maintenance: Maintenance::Instructions,
        dcache_line: Some(ctr.dcache_line()),
        icache_line: Some(ctr.icache_line()),
        idc: ctr.idc(),
        dic: ctr.dic(),
    })
}
