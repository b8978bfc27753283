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

/// The text of a walk: the maintenance instruction `$op` on `1 + {n}` lines of `{s}` bytes from
/// `{a}`, stepping with `$step` (`add` walks up, `sub` down), `{c}` a scratch counter.
///
/// The first line unconditionally (so no path skips the walk), then the `more` lines after it:
/// one and two as its low bits say; then, if any are left, four as bit 2 says, then groups of
/// eight. Each line needs its own address (one `add`), so that is 2.25 instructions per line
/// against a plain loop's 4, and up to 4 lines (the common stub) pass two tests and one `cbz`.
/// `{n}` is left as it was, so a second walk can use it.
#[cfg(not(any(windows, target_vendor = "apple")))]
macro_rules! walk_text {
    ($op:literal, $step:literal) => {
        concat!(
            $op,
            ", {a}\n",
            "tbz {n}, #0, 2f\n",
            $step,
            " {a}, {a}, {s}\n",
            $op,
            ", {a}\n",
            "2:\n",
            "tbz {n}, #1, 3f\n",
            ".rept 2\n",
            $step,
            " {a}, {a}, {s}\n",
            $op,
            ", {a}\n",
            ".endr\n",
            "3:\n",
            "lsr {c}, {n}, #2\n",
            "cbz {c}, 6f\n",
            "tbz {c}, #0, 4f\n",
            ".rept 4\n",
            $step,
            " {a}, {a}, {s}\n",
            $op,
            ", {a}\n",
            ".endr\n",
            "4:\n",
            "lsr {c}, {c}, #1\n",
            "cbz {c}, 6f\n",
            "5:\n",
            ".rept 8\n",
            $step,
            " {a}, {a}, {s}\n",
            $op,
            ", {a}\n",
            ".endr\n",
            "subs {c}, {c}, #1\n",
            "b.ne 5b\n",
            "6:\n",
        )
    };
}

/// Runs the maintenance instruction `$op` on `1 + $more` lines of `1 << $log2` bytes from
/// `$first` ([`walk_text`]). Taking `more` rather than a count lets the compiler fold the
/// planner's `+ 1` away.
#[cfg(not(any(windows, target_vendor = "apple")))]
macro_rules! walk_lines {
    ($op:literal, $first:expr, $more:expr, $log2:expr) => {
        asm!(
            walk_text!($op, "add"),
            a = inout(reg) $first => _,
            n = in(reg) $more,
            c = out(reg) _,
            s = in(reg) 1usize << $log2,
            // Not `nomem`: the maintenance must stay after the stores of the code (and, for
            // `ic ivau`, after the cleans' `dsb`). Flags are clobbered by `subs`.
            options(nostack),
        )
    };
}

/// The whole Arm ARM sequence over `1 + more` lines of `line` bytes from the one that holds
/// `first` (any address in it: each instruction acts on the line holding its address), the same
/// lines in both caches: `dc cvau` on each, `dsb ish`, `ic ivau` on each (walked back down, from where
/// the first walk ended, so no register is copied), `dsb ish`, `isb`. One block, so the
/// compiler keeps nothing live across the barriers and the walks share their registers.
///
/// # Safety
/// Every line must be mapped readable by this process (as for [`dc_cvau_lines`]).
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub unsafe fn sync_lines(first: usize, more: usize, line: usize) {
    // SAFETY: the caller guarantees the lines are mapped; each walk touches exactly `1 + more`.
    unsafe {
        asm!(
            walk_text!("dc cvau", "add"),
            // Completes the cleans (and orders the stores of the code) before the invalidations.
            "dsb ish",
            walk_text!("ic ivau", "sub"),
            "dsb ish",
            "isb",
            a = inout(reg) first => _,
            // Dead after the block: declared written, so a test can change them in the text.
            n = inout(reg) more => _,
            c = out(reg) _,
            s = inout(reg) line => _,
            // Not `nomem`: the maintenance must stay after the stores of the code; the barriers
            // order memory. Flags are clobbered by `subs`.
            options(nostack),
        )
    }
}

/// The sequence where `CTR_EL0.IDC` makes the clean unnecessary: `dsb ish` (the stores of the
/// code complete first), `ic ivau` on `1 + more` lines of `line` bytes from `first`, `dsb ish`,
/// `isb`.
///
/// # Safety
/// As for [`sync_lines`].
#[cfg(not(any(windows, target_vendor = "apple")))]
#[inline(always)]
pub unsafe fn sync_lines_idc(first: usize, more: usize, line: usize) {
    // SAFETY: the caller guarantees the lines are mapped; the walk touches exactly `1 + more`.
    unsafe {
        asm!(
            "dsb ish",
            walk_text!("ic ivau", "add"),
            "dsb ish",
            "isb",
            a = inout(reg) first => _,
            n = in(reg) more,
            c = out(reg) _,
            s = in(reg) line,
            // Not `nomem`: the invalidations must stay after the stores of the code.
            options(nostack),
        )
    }
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
