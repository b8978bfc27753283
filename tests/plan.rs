//! The line-planning logic against a plain reference model, for every line size from 4 B to
//! 64 KiB (and the architectural maximum, 128 KiB), every IDC/DIC combination, unaligned starts
//! and ends, ranges at the top of the address space, and wrap-around.

use icache::plan::{runs, CachedCtr, Coalesce, CtrEl0, LineWalk, RangePlan, Span, WrapsAround};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The reference: the set of line addresses that contain at least one byte of the range,
/// found by visiting bytes one line-size apart plus the last byte (so every line the range
/// overlaps is seen) and rounding each down. Nothing clever is shared with the crate.
fn lines_touched(start: usize, len: usize, line: usize) -> BTreeSet<usize> {
    let mut set = BTreeSet::new();
    let last = start + (len - 1);
    let mut byte = start;
    loop {
        set.insert(byte - byte % line);
        match byte.checked_add(line) {
            Some(next) if next <= last => byte = next,
            _ => break,
        }
    }
    set.insert(last - last % line);
    set
}

/// Byte by byte, for small ranges: a second, even plainer model to check the first one.
fn lines_touched_bytewise(start: usize, len: usize, line: usize) -> BTreeSet<usize> {
    (0..len).map(|i| start + i).map(|b| b - b % line).collect()
}

fn ctr(dline_log2: u32, iline_log2: u32, idc: bool, dic: bool) -> CtrEl0 {
    CtrEl0(
        (1 << 31)
            | (u64::from(dic) << 29)
            | (u64::from(idc) << 28)
            | (u64::from(dline_log2 - 2) << 16)
            | u64::from(iline_log2 - 2),
    )
}

/// The span of a range the test knows is non-empty and does not wrap.
fn span(start: usize, len: usize) -> Span {
    Span::new(start, len)
        .expect("the test's range wraps")
        .expect("the test's range is empty")
}

/// Whether `len` bytes from `start` run past the top of the address space.
fn wraps(start: usize, len: usize) -> bool {
    Span::new(start, len).is_err()
}

fn walk_set(w: LineWalk) -> BTreeSet<usize> {
    w.addresses().collect()
}

/// Under Miri, which interprets every step, the ranges shrink so that the whole file runs there
/// in minutes; the native runs and the fuzzer cover the large ones.
const MAX_LINES_LOG2: u32 = if cfg!(miri) { 5 } else { 12 };
const MAX_PLAN_LEN: usize = if cfg!(miri) { 1 << 9 } else { 1 << 17 };
const EXHAUSTIVE_MAX_LINE_LOG2: u32 = if cfg!(miri) { 6 } else { 16 };
const EXHAUSTIVE_MAX_LEN: usize = if cfg!(miri) { 12 } else { 256 };

/// A start address: anywhere, but biased to the interesting places (near 0, near lines, near
/// the top of the address space).
fn any_start() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..1 << 20,
        any::<usize>(),
        (0usize..1 << 18).prop_map(|d| usize::MAX - d),
    ]
}

proptest! {
    // 256 cases by default; `.ci/test` raises PROPTEST_CASES on the host.

    #[test]
    fn walk_covers_exactly_the_lines_touched(
        start in any_start(),
        (line_log2, len) in (2u32..=17).prop_flat_map(|l| (Just(l), prop_oneof![1usize..300, 1usize..(1usize << (MAX_LINES_LOG2 + l))])),
    ) {
        prop_assume!(!wraps(start, len));
        let w = LineWalk::new(span(start, len), line_log2);
        let expect = lines_touched(start, len, 1 << line_log2);
        prop_assert_eq!(w.count(), expect.len());
        prop_assert_eq!(w.more() + 1, w.count());
        prop_assert_eq!(w.line_log2(), line_log2);
        prop_assert_eq!(w.first() % w.step(), 0);
        prop_assert_eq!(walk_set(w), expect);
    }

    #[test]
    fn reference_models_agree(start in 0usize..1 << 20, len in 1usize..2000, line_log2 in 2u32..=16) {
        prop_assert_eq!(lines_touched(start, len, 1 << line_log2), lines_touched_bytewise(start, len, 1 << line_log2));
    }

    #[test]
    fn range_plan_follows_idc_dic(
        start in any_start(),
        len in prop_oneof![0usize..300, 0usize..MAX_PLAN_LEN],
        dline in 2u32..=16,
        iline in 2u32..=16,
        idc: bool,
        dic: bool,
    ) {
        prop_assume!(!wraps(start, len));
        let c = ctr(dline, iline, idc, dic);
        prop_assert_eq!((c.dcache_line_log2(), c.icache_line_log2(), c.idc(), c.dic()), (dline, iline, idc, dic));
        match Span::new(start, len).unwrap() {
            None => prop_assert_eq!(len, 0),
            Some(s) => {
                let p = RangePlan::new(s, c);
                prop_assert!(len > 0);
                prop_assert_eq!(p.clean.is_none(), idc);
                prop_assert_eq!(p.invalidate.is_none(), dic);
                if let Some(w) = p.clean {
                    prop_assert_eq!(walk_set(w), lines_touched(start, len, 1 << dline));
                }
                if let Some(w) = p.invalidate {
                    prop_assert_eq!(walk_set(w), lines_touched(start, len, 1 << iline));
                }
            }
        }
    }

    #[test]
    fn span_rejects_exactly_the_wrapping_ranges(start: usize, len: usize) {
        let wraps = (start as u128) + (len as u128) > (usize::MAX as u128) + 1;
        match Span::new(start, len) {
            Ok(None) => prop_assert_eq!(len, 0),
            Err(WrapsAround) => prop_assert!(wraps),
            Ok(Some(s)) => {
                prop_assert!(!wraps);
                prop_assert_eq!((s.start(), s.len()), (start, len));
                prop_assert_eq!(s.last() as u128, start as u128 + len as u128 - 1);
                prop_assert_eq!(s.end() as u128, (start as u128 + len as u128).min(usize::MAX as u128));
            }
        }
    }

    #[test]
    fn cached_ctr_keeps_every_field_but_the_res0_bits_it_uses(raw in any::<u32>()) {
        // Bit 30 and bits 10:4 are RES0 in the register; the cache keeps everything else.
        let raw = u64::from(raw) & !(1 << 30) & !(0x7f << 4);
        let cached = CachedCtr::new(CtrEl0(raw));
        prop_assert_eq!(cached.ctr(), CtrEl0(raw));
        prop_assert!(cached.is_read());
    }

    #[test]
    fn one_line_exactly_when_both_walks_are_one_line(
        start in any_start(),
        len in prop_oneof![1usize..300, 1usize..MAX_PLAN_LEN],
        dline in 2u32..=17,
        iline in 2u32..=17,
        idc: bool,
        dic: bool,
    ) {
        prop_assume!(!wraps(start, len));
        let c = ctr(dline, iline, idc, dic);
        let cached = CachedCtr::new(c);
        let s = span(start, len);
        prop_assert!(cached.is_read());
        prop_assert_eq!(cached.ctr().0, c.0 & 0xffff_ffff);
        prop_assert_eq!(cached.same_lines(), dline == iline);
        // The common path: one bit, and the walk it plans is the ordinary walk of that size.
        prop_assert_eq!(cached.plain(), dline == iline && !idc && !dic);
        prop_assert_eq!(cached.min_line(), 1usize << dline.min(iline));
        match cached.plain_walk(s) {
            Some(w) => {
                prop_assert_eq!(w, LineWalk::new(s, dline));
                prop_assert_eq!(w.step(), cached.min_line());
            }
            None => prop_assert!(!cached.plain()),
        }
        match cached.idc_walk(s) {
            Some(w) => {
                prop_assert!(dline == iline && idc && !dic);
                prop_assert_eq!(w, LineWalk::new(s, dline));
            }
            None => prop_assert!(!(dline == iline && idc && !dic)),
        }
        prop_assert!(CachedCtr::NOT_READ.plain_walk(s).is_none());
        let both_one = LineWalk::new(s, dline).count() == 1 && LineWalk::new(s, iline).count() == 1;
        prop_assert_eq!(cached.one_line(s), both_one);
        prop_assert!(!CachedCtr::NOT_READ.one_line(s));
        // Two lines of the smaller size, exactly when the walk of that size says so.
        let small = LineWalk::new(s, dline.min(iline)).count();
        prop_assert_eq!(cached.two_lines(s), small <= 2);
        prop_assert!(!CachedCtr::NOT_READ.two_lines(s));
        if cached.two_lines(s) && !cached.one_line(s) && dline == iline {
            prop_assert_eq!(LineWalk::new(s, dline).count(), 2);
        }
    }

    #[test]
    fn runs_walk_exactly_the_lines_of_their_spans(
        base in any_start(),
        pieces in proptest::collection::vec((0usize..600, 1usize..300), 1..12),
        line_log2 in 2u32..=8,
        back_to_back: bool,
    ) {
        // Spans in ascending order (back to back, or with gaps), each shortened to fit below
        // the top of the address space.
        let mut spans = Vec::new();
        let mut at = base;
        for (gap, len) in pieces {
            let start = if back_to_back { at } else { at.saturating_add(gap) };
            let len = len.min(usize::MAX - start).max(1);
            spans.push(span(start, len));
            at = spans.last().unwrap().last().saturating_add(1);
            if at == usize::MAX { break; }
        }
        let lines = |s: &Span| walk_set(LineWalk::new(*s, line_log2));
        let want: BTreeSet<usize> = spans.iter().flat_map(lines).collect();
        let got: Vec<Span> = runs(spans.iter().copied(), line_log2).collect();
        let walked: Vec<usize> = got.iter().flat_map(lines).collect();
        // Every line once: ascending spans never share a line between two runs.
        prop_assert_eq!(walked.len(), want.len(), "runs {:?} of {:?}", got, spans);
        prop_assert_eq!(walked.into_iter().collect::<BTreeSet<_>>(), want);
        if back_to_back {
            prop_assert_eq!(got.len(), 1);
        }
    }

    #[test]
    fn runs_of_any_order_cover_the_lines_of_their_spans(
        spans in proptest::collection::vec((any_start(), 1usize..300), 1..10),
        line_log2 in 2u32..=8,
    ) {
        let spans: Vec<Span> = spans
            .into_iter()
            .map(|(start, len)| span(start, len.min(usize::MAX - start).max(1)))
            .collect();
        let lines = |s: &Span| walk_set(LineWalk::new(*s, line_log2));
        let want: BTreeSet<usize> = spans.iter().flat_map(lines).collect();
        let got: BTreeSet<usize> = runs(spans.iter().copied(), line_log2).flat_map(|s| lines(&s)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn push_range_is_span_new_then_push(
        first in any_start(),
        first_len in 1usize..5000,
        ranges in proptest::collection::vec((any_start(), 0usize..5000, any::<bool>()), 1..10),
        line_log2 in 2u32..=8,
    ) {
        let first = span(first, first_len.min(usize::MAX - first).max(1));
        let (mut fast, mut plain) = (Coalesce::new(first, line_log2), Coalesce::new(first, line_log2));
        for (start, len, back_to_back) in ranges {
            // Half of them start where the run ends, the case the fast path takes.
            let start = if back_to_back { plain.finish().last().wrapping_add(1) } else { start };
            let want = match Span::new(start, len) {
                Err(e) => Err(e),
                Ok(None) => Ok(None),
                Ok(Some(s)) => Ok(plain.push(s)),
            };
            prop_assert_eq!(fast.push_range(start, len), want, "{:#x} + {:#x}", start, len);
            prop_assert_eq!(fast, plain);
        }
    }

    #[test]
    fn hull_holds_both_spans_and_nothing_outside_them(a in any_start(), la in 1usize..1 << 20, b in any_start(), lb in 1usize..1 << 20) {
        // Shortened to fit below the top of the address space rather than rejected.
        let (la, lb) = (la.min(usize::MAX - a).max(1), lb.min(usize::MAX - b).max(1));
        let (x, y) = (span(a, la), span(b, lb));
        let h = x.hull(y);
        prop_assert_eq!(h, y.hull(x));
        prop_assert_eq!(h.start(), x.start().min(y.start()));
        prop_assert_eq!(h.last(), x.last().max(y.last()));
    }

    #[test]
    fn wrapping_ranges_are_refused_by_the_api(start in (usize::MAX - 4096)..=usize::MAX, extra in 1usize..1 << 16) {
        let len = usize::MAX - start + 1 + extra;
        // SAFETY: a wrapping range is rejected before any memory is touched.
        let r = unsafe { icache::clear_cache(start as *const _, len) };
        prop_assert_eq!(r.unwrap_err().kind(), icache::ErrorKind::InvalidInput);
        // SAFETY: as above; the empty range is skipped, the wrapping one rejects the batch.
        let r = unsafe { icache::clear_cache_many(&[(8 as *const _, 0), (start as *const _, len)]) };
        prop_assert_eq!(r.unwrap_err().kind(), icache::ErrorKind::InvalidInput);
    }
}

/// Every line size the field can encode, every offset within a 64 KiB line, exhaustively for
/// short lengths: the walks the crate plans against the byte-wise model.
#[test]
fn exhaustive_small_ranges() {
    for line_log2 in 2..=EXHAUSTIVE_MAX_LINE_LOG2 {
        let line = 1usize << line_log2;
        let starts = [
            0,
            1,
            3,
            line - 1,
            line,
            line + 1,
            2 * line - 3,
            0x1234_5677 % (4 * line),
        ];
        for &start in &starts {
            for len in 1..=3 * line.min(EXHAUSTIVE_MAX_LEN) + 2 {
                let w = LineWalk::new(span(start, len), line_log2);
                assert_eq!(
                    walk_set(w),
                    lines_touched_bytewise(start, len, line),
                    "start {start} len {len} line {line}"
                );
            }
        }
    }
}

/// The very top of the address space: a range ending at `usize::MAX` is valid and its walk
/// neither overflows nor misses the last line.
#[test]
fn top_of_address_space() {
    for line_log2 in 2..=17u32 {
        let lens: &[usize] = if cfg!(miri) {
            &[1, 2, 63, 64, 65]
        } else {
            &[1, 2, 63, 64, 65, 4096, 1 << 17]
        };
        for &len in lens {
            let start = usize::MAX - (len - 1);
            assert_eq!(span(start, len).last(), usize::MAX);
            let w = LineWalk::new(span(start, len), line_log2);
            assert_eq!(
                w.first() + (w.more() << line_log2),
                usize::MAX & !((1 << line_log2) - 1)
            );
            assert_eq!(walk_set(w), lines_touched(start, len, 1 << line_log2));
        }
    }
}

/// Values read from real and emulated CPUs (REFERENCE.md).
#[test]
fn decodes_known_ctr_el0_values() {
    // (value, D-line, I-line, IDC, DIC)
    let known = [
        (0x8003_8003u64, 32, 32, false, false), // qemu `max`, user mode
        (0x8444_8004, 64, 64, false, false),    // Cortex-A53
        (0x8444_c004, 64, 64, false, false),    // Cortex-A72, Neoverse-N1
        (0x8666_8006, 256, 256, false, false),  // A64FX
        (0x9444_c004, 64, 64, true, false),     // qemu `max` under a Linux kernel
        (0xb444_c004, 64, 64, true, true),      // IDC and DIC (Neoverse-N1 without the erratum)
        (0x9444_c00e, 64, 65536, true, false),  // erratum 1542419: IminLine reports a page
        (0x84448004, 64, 64, false, false),
    ];
    for (value, d, i, idc, dic) in known {
        let c = CtrEl0(value);
        assert_eq!(
            (c.dcache_line(), c.icache_line(), c.idc(), c.dic()),
            (d, i, idc, dic),
            "{value:#x}"
        );
    }
}

/// Every value of the two line fields decodes to `4 << field` bytes, and IDC/DIC are bits 28/29.
#[test]
fn decodes_every_field_value() {
    for field in 0..16u64 {
        let c = CtrEl0((1 << 31) | (field << 16) | field);
        assert_eq!(c.dcache_line(), 4 << field);
        assert_eq!(c.icache_line(), 4 << field);
    }
    for bits in 0..4u64 {
        let c = CtrEl0((1 << 31) | (bits << 28));
        assert_eq!((c.idc(), c.dic()), (bits & 1 != 0, bits & 2 != 0));
    }
}

/// Line sizes outside what a walk can take are clamped, so the count and every address still
/// fit a `usize`: 1- and 2-byte "lines" walk 4-byte lines, and the whole address space with the
/// largest line is two lines.
#[test]
fn line_sizes_are_clamped() {
    let all = span(0, usize::MAX);
    for log2 in [0, 1, 2] {
        let w = LineWalk::new(all, log2);
        assert_eq!((w.line_log2(), w.count()), (2, (usize::MAX >> 2) + 1));
    }
    for log2 in [usize::BITS - 1, usize::BITS, u32::MAX] {
        let w = LineWalk::new(span(0, usize::MAX).hull(span(usize::MAX, 1)), log2);
        assert_eq!(
            (w.line_log2(), w.first(), w.count()),
            (usize::BITS - 1, 0, 2)
        );
    }
}
