//! AArch64 with user-space cache maintenance (Linux, Android, FreeBSD, bare metal): the Arm ARM
//! sequence, walked by this crate with the line sizes of `CTR_EL0` (`arch/aarch64.rs` has the
//! instructions, `src/plan.rs` the lines).

use crate::arch;
use crate::plan::{CtrEl0, RangePlan, Span};
use crate::{CacheInfo, Error, L1Icache, Maintenance};

/// Bare metal: the code runs at EL1 or above, where the read never traps, and no OS migrates it
/// between cores, so the running core's own value is read every time (cores of a big.LITTLE
/// system may differ).
#[cfg(target_os = "none")]
#[inline(always)]
fn with_ctr_el0<R>(f: impl FnOnce(CtrEl0) -> R) -> R {
    f(CtrEl0(arch::read_ctr_el0()))
}

/// `CTR_EL0`, read once per process: the read can trap to the kernel. Safe to keep because Linux
/// reports the system-wide safe (smallest) line sizes when cores differ
/// (`arch/arm64/kernel/cpufeature.c`). FreeBSD lets EL0 read the register directly
/// (`SCTLR_EL1.UCT`, `sys/arm64/arm64/locore.S`). 0 means "not read yet": bit 31 of the register
/// is always 1.
#[cfg(not(target_os = "none"))]
static CTR_EL0: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Runs `f` with the cached value. The first use in the process runs all of `f` out of line,
/// after the read: the common path then makes no call and needs no stack frame (a call in its
/// middle would give it one).
#[cfg(not(target_os = "none"))]
#[inline(always)]
fn with_ctr_el0<R>(f: impl FnOnce(CtrEl0) -> R) -> R {
    match CTR_EL0.load(core::sync::atomic::Ordering::Relaxed) {
        0 => read_ctr_el0(f),
        ctr => f(CtrEl0(ctr)),
    }
}

#[cfg(not(target_os = "none"))]
#[cold]
#[inline(never)]
fn read_ctr_el0<R>(f: impl FnOnce(CtrEl0) -> R) -> R {
    let ctr = arch::read_ctr_el0();
    CTR_EL0.store(ctr, core::sync::atomic::Ordering::Relaxed);
    f(CtrEl0(ctr))
}

/// The whole Arm ARM sequence for a set of spans, barriers once.
///
/// # Safety
/// Every byte of every span is mapped readable.
#[inline(always)]
unsafe fn sync<I: Iterator<Item = Span> + Clone>(spans: I, ctr: CtrEl0) {
    let plans = spans.map(move |span| RangePlan::new(span, ctr));
    let mut any = false;
    for p in plans.clone() {
        any = true;
        if let Some(w) = p.clean {
            // SAFETY: the caller guarantees the lines are mapped.
            unsafe { arch::dc_cvau_lines(w.first(), w.more(), w.line_log2()) };
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
                unsafe { arch::ic_ivau_lines(w.first(), w.more(), w.line_log2()) };
            }
        }
        arch::dsb_ish();
    }
    arch::isb();
}

/// # Safety
/// Every byte of the span is mapped readable (the contract of `clear_cache`).
#[inline]
pub unsafe fn clear_range(span: Span) -> Result<(), Error> {
    // SAFETY: forwarded from `clear_cache`.
    with_ctr_el0(move |ctr| unsafe { sync(core::iter::once(span), ctr) });
    Ok(())
}

/// # Safety
/// Every byte of every span is mapped readable (the contract of `clear_cache_many`).
pub unsafe fn clear_ranges<I: Iterator<Item = Span> + Clone>(spans: I) -> Result<(), Error> {
    // SAFETY: forwarded from `clear_cache_many`.
    with_ctr_el0(move |ctr| unsafe { sync(spans, ctr) });
    Ok(())
}

pub fn cache_info() -> CacheInfo {
    with_ctr_el0(|ctr| CacheInfo {
        maintenance: Maintenance::Instructions,
        dcache_line: Some(ctr.dcache_line()),
        icache_line: Some(ctr.icache_line()),
        idc: Some(ctr.idc()),
        dic: Some(ctr.dic()),
        l1_icache: Some(match ctr.l1ip() {
            0b00 => L1Icache::Vpipt,
            0b01 => L1Icache::Aivivt,
            0b10 => L1Icache::Vipt,
            _ => L1Icache::Pipt,
        }),
    })
}
