//! AArch64: the raw instruction sequences for instruction-cache coherence.
//!
//! Per the Arm Architecture Reference Manual (DDI 0487, "Concurrent modification and execution of
//! instructions" and "Ordering and completion of data and instruction cache instructions"): clean each D-line to the point of unification (`dc cvau`), `dsb ish` so the
//! cleans complete, invalidate each I-line (`ic ivau`), `dsb ish` so the invalidations complete,
//! then `isb` so this core refetches. The planning of which lines lives in `src/plan.rs`.
//!
//! None of these blocks is `nomem`: to the compiler each may read and write any memory, so the
//! stores of the new code can never be moved after them (the same reason Linux's
//! `arch/arm64/include/asm/barrier.h` gives its barriers a "memory" clobber). `nostack`: none
//! touches the stack.
//!
//! On Windows and Apple the OS does the maintenance and the crate never reads `CTR_EL0`
//! (`src/clear/mod.rs`): only `isb` is compiled there.

use core::arch::asm;

/// Reads `CTR_EL0`. Linux lets EL0 read it (and emulates it on cores that must trap it; see
/// `arch/arm64/kernel/traps.c`, `ctr_read_handler`).
///
/// `nomem` is right here and only here: reading an ID register neither reads nor writes memory
/// and orders nothing.
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub fn read_ctr_el0() -> u64 {
    let ctr: u64;
    // SAFETY: an `mrs` of CTR_EL0 has no side effect; Linux permits or emulates it at EL0.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    ctr
}

/// Runs the maintenance instruction `$op` on `1 + $more` lines of `1 << $log2` bytes from
/// `$first`.
///
/// The first line unconditionally (so no path through the code skips the walk), then the `more`
/// lines after it: one, two, then four, as their low bits say, then groups of eight. That is
/// 2.25 instructions per line instead of a plain loop's 4 (each line still needs its own
/// address: one `add`), and 6 for a single line (spans in one line take `dc_cvau`/`ic_ivau`). Taking `more` rather than a count lets the compiler fold
/// the planner's `+ 1` away.
#[cfg(not(any(windows, target_vendor = "apple")))]
macro_rules! walk_lines {
    ($op:literal, $first:expr, $more:expr, $log2:expr) => {
        asm!(
            concat!($op, ", {a}"),
            "tbz {n}, #0, 2f",
            "add {a}, {a}, {s}",
            concat!($op, ", {a}"),
            "2:",
            "tbz {n}, #1, 3f",
            ".rept 2",
            "add {a}, {a}, {s}",
            concat!($op, ", {a}"),
            ".endr",
            "3:",
            "tbz {n}, #2, 4f",
            ".rept 4",
            "add {a}, {a}, {s}",
            concat!($op, ", {a}"),
            ".endr",
            "4:",
            "lsr {n}, {n}, #3",
            "cbz {n}, 6f",
            "5:",
            ".rept 8",
            "add {a}, {a}, {s}",
            concat!($op, ", {a}"),
            ".endr",
            "subs {n}, {n}, #1",
            "b.ne 5b",
            "6:",
            a = inout(reg) $first => _,
            n = inout(reg) $more => _,
            s = in(reg) 1usize << $log2,
            // Not `nomem`: the maintenance must stay after the stores of the code (and, for
            // `ic ivau`, after the cleans' `dsb`). Flags are clobbered by `subs`.
            options(nostack),
        )
    };
}

/// `dc cvau` on `1 + more` lines of `1 << line_log2` bytes from `first`.
///
/// # Safety
/// Every line must be mapped readable by this process (otherwise the instruction faults: at EL0
/// `dc cvau` and `ic ivau` need read permission, per the Arm ARM).
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub unsafe fn dc_cvau_lines(first: usize, more: usize, line_log2: u32) {
    // SAFETY: the caller guarantees the lines are mapped; the walk touches exactly `1 + more`.
    unsafe { walk_lines!("dc cvau", first, more, line_log2) }
}

/// `ic ivau` on `1 + more` lines of `1 << line_log2` bytes from `first`.
///
/// # Safety
/// As for [`dc_cvau_lines`].
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub unsafe fn ic_ivau_lines(first: usize, more: usize, line_log2: u32) {
    // SAFETY: as for `dc_cvau_lines`.
    unsafe { walk_lines!("ic ivau", first, more, line_log2) }
}

/// `dc cvau` on the one line that holds `addr`.
///
/// # Safety
/// As for [`dc_cvau_lines`].
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub unsafe fn dc_cvau(addr: usize) {
    // SAFETY: the caller guarantees the line is mapped readable. Not `nomem`: it must stay after
    // the stores of the code.
    unsafe { asm!("dc cvau, {}", in(reg) addr, options(nostack, preserves_flags)) };
}

/// `ic ivau` on the one line that holds `addr`.
///
/// # Safety
/// As for [`dc_cvau_lines`].
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub unsafe fn ic_ivau(addr: usize) {
    // SAFETY: as for `dc_cvau`. Not `nomem`: it must stay after the `dsb` that completed the
    // cleans.
    unsafe { asm!("ic ivau, {}", in(reg) addr, options(nostack, preserves_flags)) };
}

/// `dsb ish`: waits for earlier stores and cache maintenance to complete in the inner shareable
/// domain (every core of the system).
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub fn dsb_ish() {
    // SAFETY: a barrier has no operands and cannot fault. Not `nomem`: it orders memory.
    unsafe { asm!("dsb ish", options(nostack, preserves_flags)) };
}

/// `isb`: a context-synchronisation event; this core discards what it fetched before. Also the
/// whole of `pipeline_flush_local` on AArch64.
#[inline(always)]
pub fn isb() {
    // SAFETY: as for `dsb_ish`. Not `nomem`: nothing may move across it.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
}

pub use isb as local_sync;
