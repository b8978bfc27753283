//! AArch64 with user-space cache maintenance (Linux, Android, FreeBSD, bare metal): the Arm ARM
//! sequence, walked by this crate with the line sizes of `CTR_EL0` (`arch/aarch64.rs` has the
//! instructions, `src/plan.rs` the lines).

use crate::arch;
use crate::plan;
use crate::plan::{CachedCtr, CtrEl0, LineWalk, RangePlan, Span};
use crate::{CacheInfo, Error, L1Icache, Maintenance};
use core::mem::MaybeUninit;

/// Bare metal: the code runs at EL1 or above, where the read never traps, and no OS migrates it
/// between cores, so the running core's own value is read every time (cores of a big.LITTLE
/// system may differ).
#[cfg(target_os = "none")]
#[inline(always)]
fn cached_ctr() -> CachedCtr {
    CachedCtr::new(CtrEl0(arch::read_ctr_el0()))
}

/// `CTR_EL0`, read once per process and kept packed ([`CachedCtr`]): the read can trap to the
/// kernel. Safe to keep because Linux reports the system-wide safe (smallest) line sizes when
/// cores differ (`arch/arm64/kernel/cpufeature.c`). FreeBSD lets EL0 read the register directly
/// (`SCTLR_EL1.UCT`, `sys/arm64/arm64/locore.S`).
#[cfg(not(target_os = "none"))]
static CTR_EL0: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The cached value, [`CachedCtr::NOT_READ`] before the first [`with_ctr_el0`].
#[cfg(not(target_os = "none"))]
#[inline(always)]
fn cached_ctr() -> CachedCtr {
    CachedCtr(CTR_EL0.load(core::sync::atomic::Ordering::Relaxed))
}

/// Runs `f` with the register's value. The first use in the process runs all of `f` out of
/// line, after the read: the common path then makes no call and needs no stack frame (a call in
/// its middle would give it one).
#[inline(always)]
fn with_ctr_el0<R>(f: impl FnOnce(CachedCtr) -> R) -> R {
    with_read(cached_ctr(), f)
}

/// [`with_ctr_el0`] for a value the caller already loaded.
#[inline(always)]
fn with_read<R>(cached: CachedCtr, f: impl FnOnce(CachedCtr) -> R) -> R {
    if cached.is_read() {
        f(cached)
    } else {
        read_ctr_el0(f)
    }
}

#[cold]
#[inline(never)]
fn read_ctr_el0<R>(f: impl FnOnce(CachedCtr) -> R) -> R {
    let cached = CachedCtr::new(CtrEl0(arch::read_ctr_el0()));
    #[cfg(not(target_os = "none"))]
    CTR_EL0.store(cached.0, core::sync::atomic::Ordering::Relaxed);
    f(cached)
}

/// The Arm ARM sequence around its two walks, the one shape every path here has: `clean` the
/// D-lines (unless IDC), `dsb ish`, `invalidate` the I-lines and `dsb ish` (unless DIC), `isb`.
#[inline(always)]
fn sequence(ctr: CtrEl0, clean: impl FnOnce(), invalidate: impl FnOnce()) {
    if !ctr.idc() {
        clean();
    }
    // Always: it also orders the stores of the code before the invalidations.
    arch::dsb_ish();
    if !ctr.dic() {
        invalidate();
        arch::dsb_ish();
    }
    arch::isb();
}

/// The sequence for a set of runs, barriers once.
///
/// # Safety
/// Every byte of every span is mapped readable.
#[inline(always)]
unsafe fn sync<I: Iterator<Item = Span> + Clone>(spans: I, ctr: CtrEl0) {
    let plans = spans.map(move |span| RangePlan::new(span, ctr));
    let walks = plans.clone();
    sequence(
        ctr,
        || {
            for w in walks.filter_map(|p| p.clean) {
                // SAFETY: the caller guarantees the lines are mapped.
                unsafe { arch::dc_cvau_lines(w.first(), w.more(), w.line_log2()) };
            }
        },
        || {
            for w in plans.filter_map(|p| p.invalidate) {
                // SAFETY: as above.
                unsafe { arch::ic_ivau_lines(w.first(), w.more(), w.line_log2()) };
            }
        },
    );
}

/// The sequence for a span inside one line of each cache (a patched instruction, a stub): one
/// `dc cvau` and one `ic ivau` on its start, which lies in that line, and no walk.
///
/// # Safety
/// The line that holds `addr` is mapped readable.
#[inline(always)]
unsafe fn sync_one_line(addr: usize, ctr: CtrEl0) {
    sequence(
        ctr,
        // SAFETY: forwarded from the caller.
        || unsafe { arch::dc_cvau(addr) },
        // SAFETY: forwarded from the caller.
        || unsafe { arch::ic_ivau(addr) },
    );
}

/// # Safety
/// Every byte of the span is mapped readable (the contract of `clear_cache`).
#[inline]
pub unsafe fn clear_range(span: Span) -> Result<(), Error> {
    let cached = cached_ctr();
    if cached.one_line(span) {
        // SAFETY: forwarded from `clear_cache`.
        unsafe { sync_one_line(span.start(), cached.ctr()) };
        return Ok(());
    }
    // SAFETY: forwarded from `clear_cache`.
    unsafe { clear_lines(span, cached) };
    Ok(())
}

/// A span over more than one line: out of line, so that the one-line path inlined into the
/// caller needs no stack frame (a call in its middle would give it one) and this is a tail call.
/// Most cores take [`sync_packed`]: one bit says the line sizes are equal and which walks run.
///
/// # Safety
/// Every byte of the span is mapped readable.
#[inline(never)]
unsafe fn clear_lines(span: Span, cached: CachedCtr) {
    // SAFETY: forwarded from `clear_range`.
    if !unsafe { sync_packed(span, cached) } {
        // SAFETY: forwarded from `clear_range`.
        unsafe { clear_lines_other(span, cached) };
    }
}

/// The first call of the process, and cores with `DIC` or lines of two sizes.
///
/// # Safety
/// Every byte of the span is mapped readable.
#[cold]
#[inline(never)]
unsafe fn clear_lines_other(span: Span, cached: CachedCtr) {
    // Only the read itself out of line: the sequence stays in this function.
    let cached = with_read(cached, |cached| cached);
    // SAFETY: forwarded from `clear_lines`.
    unsafe { sync_span(span, cached) };
}

/// A register value with neither `IDC` nor `DIC`: [`sequence`] with it runs both walks and tests
/// nothing.
const BOTH_WALKS: CtrEl0 = CtrEl0(0);

/// A register value with `IDC` and not `DIC`: [`sequence`] with it only invalidates.
const ONLY_INVALIDATE: CtrEl0 = CtrEl0(1 << 28);

/// The sequence over the lines of one size a span touches: two lines without a walk (a short
/// stub or patch across a line boundary), more in one block of assembly. `ctr` says which walks
/// the two-line form runs, `block` is the matching block: [`BOTH_WALKS`] with
/// [`arch::sync_lines`], or [`ONLY_INVALIDATE`] with [`arch::sync_lines_idc`].
///
/// # Safety
/// Every byte of the span is mapped readable; `walk` is its walk, `line` (the packed size, one
/// shift away, where `walk.step()` takes two instructions) its step.
#[inline(always)]
unsafe fn sync_one_size(
    span: Span,
    walk: LineWalk,
    line: usize,
    ctr: CtrEl0,
    block: unsafe fn(usize, usize, usize),
) {
    // From the span's start rather than its first line's: `dc cvau` and `ic ivau` act on the
    // line that holds the address (Arm ARM, "Data cache maintenance instructions"), and
    // `start + k * line` lies in the span's k-th line for k = 0..=more (the last of them may
    // pass the span's end within its last line, which is mapped), so no alignment is needed.
    if walk.more() == 1 {
        // SAFETY: forwarded from the caller: the lines of the span's first and last bytes.
        unsafe { sync_two_lines(span.start(), span.last(), ctr) };
    } else {
        // SAFETY: forwarded from the caller; every address walked is in one of its lines.
        unsafe { block(span.start(), walk.more(), line) };
    }
}

/// The fast paths, where one packed bit says the lines are of one size and which walks run.
/// `false` for the first call of the process and for cores with `DIC` or two line sizes.
///
/// # Safety
/// Every byte of the span is mapped readable.
#[inline(always)]
unsafe fn sync_packed(span: Span, cached: CachedCtr) -> bool {
    let line = cached.min_line();
    if let Some(walk) = cached.plain_walk(span) {
        // SAFETY: forwarded from the caller.
        unsafe { sync_one_size(span, walk, line, BOTH_WALKS, arch::sync_lines) };
    } else if let Some(walk) = cached.idc_walk(span) {
        // SAFETY: forwarded from the caller.
        unsafe { sync_one_size(span, walk, line, ONLY_INVALIDATE, arch::sync_lines_idc) };
    } else {
        return false;
    }
    true
}

/// The Arm ARM sequence for one span. Where the D- and I-lines have the same size (most cores)
/// the two walks cover the same lines, and the geometry is worked out once.
///
/// # Safety
/// Every byte of the span is mapped readable.
#[inline(always)]
unsafe fn sync_span(span: Span, cached: CachedCtr) {
    // SAFETY: forwarded from the caller.
    if unsafe { sync_packed(span, cached) } {
        return;
    }
    if !cached.same_lines() {
        // SAFETY: forwarded from the caller.
        unsafe { sync_span_two_sizes(span, cached.ctr()) };
    } else if cached.two_lines(span) {
        // Not in one line (the caller took that path), so in exactly two, the same in both
        // caches: the lines of its first and last byte, no walk.
        // SAFETY: forwarded from the caller.
        unsafe { sync_two_lines(span.start(), span.last(), cached.ctr()) };
    } else {
        let walk = LineWalk::new(span, cached.ctr().dcache_line_log2());
        // SAFETY: forwarded from the caller.
        unsafe { sync_walks(walk, walk, cached.ctr()) };
    }
}

/// The sequence for the two lines that hold `first` and `last` (a short stub or patch across a
/// line boundary), with no walk.
///
/// # Safety
/// Both lines are mapped readable.
#[inline(always)]
unsafe fn sync_two_lines(first: usize, last: usize, ctr: CtrEl0) {
    sequence(
        ctr,
        // SAFETY: forwarded from the caller.
        || unsafe {
            arch::dc_cvau(first);
            arch::dc_cvau(last);
        },
        // SAFETY: forwarded from the caller.
        || unsafe {
            arch::ic_ivau(first);
            arch::ic_ivau(last);
        },
    );
}

/// Cores whose D- and I-lines differ: out of line, so that the common case above is not made
/// to compute both geometries (the compiler would otherwise select between them).
///
/// # Safety
/// Every byte of the span is mapped readable.
#[cold]
#[inline(never)]
unsafe fn sync_span_two_sizes(span: Span, ctr: CtrEl0) {
    let clean = LineWalk::new(span, ctr.dcache_line_log2());
    let invalidate = LineWalk::new(span, ctr.icache_line_log2());
    // SAFETY: forwarded from the caller.
    unsafe { sync_walks(clean, invalidate, ctr) };
}

/// The sequence over the lines of `clean` and of `invalidate`.
///
/// # Safety
/// Every line of both walks is mapped readable.
#[inline(always)]
unsafe fn sync_walks(clean: LineWalk, invalidate: LineWalk, ctr: CtrEl0) {
    sequence(
        ctr,
        // SAFETY: forwarded from the caller.
        || unsafe { arch::dc_cvau_lines(clean.first(), clean.more(), clean.line_log2()) },
        // SAFETY: forwarded from the caller.
        || unsafe {
            arch::ic_ivau_lines(
                invalidate.first(),
                invalidate.more(),
                invalidate.line_log2(),
            )
        },
    );
}

/// # Safety
/// Every byte of every span is mapped readable (the contract of `clear_cache_many`).
pub unsafe fn clear_ranges<B: super::Batch>(batch: B) -> Result<(), Error> {
    // SAFETY: forwarded from `clear_cache_many`.
    with_ctr_el0(move |cached| unsafe { sync_batch(batch, cached) })
}

/// Runs kept on the stack between the clean and the invalidate walks of a batch (no
/// allocation); a batch that coalesces into more runs is coalesced again for the second walk.
const KEPT_RUNS: usize = 16;

/// A batch: its spans checked and coalesced into runs in one pass that touches nothing
/// (functions written back to back become one walk, a line two neighbours share is maintained
/// once), then the sequence over the runs.
///
/// # Safety
/// Every byte of every span is mapped readable.
#[inline(always)]
unsafe fn sync_batch<B: super::Batch>(batch: B, cached: CachedCtr) -> Result<(), Error> {
    let mut rest = batch.clone();
    let first = loop {
        match rest.next() {
            None => return Ok(()),
            Some((start, len)) => match Span::new(start, len) {
                Ok(None) => continue,
                Ok(Some(first)) => break first,
                Err(_) => return Err(super::wrapping_batch()),
            },
        }
    };
    // Runs are formed on the smaller line, so their lines are the spans' lines in both caches.
    let line_log2 = cached.min_line().trailing_zeros();
    let mut coalesce = plan::Coalesce::new(first, line_log2);
    // Left uninitialised: a batch of a few ranges should not pay for sixteen stores.
    let mut kept = [const { MaybeUninit::<Span>::uninit() }; KEPT_RUNS];
    let mut n = 0;
    for (start, len) in rest {
        let ended = coalesce
            .push_range(start, len)
            .map_err(|_| super::wrapping_batch())?;
        if let Some(run) = ended {
            if n == KEPT_RUNS - 1 {
                // Too many runs to keep: check the rest, then coalesce again for each walk.
                let spans = super::checked(batch)?;
                // SAFETY: forwarded from the caller.
                unsafe { sync(plan::runs(spans, line_log2), cached.ctr()) };
                return Ok(());
            }
            kept[n].write(run);
            n += 1;
        }
    }
    kept[n].write(coalesce.finish());
    // SAFETY: `kept[..=n]` were all written just above.
    let runs = kept[..=n].iter().map(|run| unsafe { run.assume_init() });
    // SAFETY: forwarded from the caller.
    unsafe { sync(runs, cached.ctr()) };
    Ok(())
}

pub fn cache_info() -> CacheInfo {
    with_ctr_el0(|cached| cache_info_of(cached.ctr()))
}

fn cache_info_of(ctr: CtrEl0) -> CacheInfo {
    CacheInfo {
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
    }
}
