//! The reference model the fuzz targets hold the crate to. It works in `u128`, where nothing a
//! `usize` range can produce overflows, and says what a correct walk is rather than how to
//! compute one: the lines are aligned, the first holds the first byte, the last holds the last
//! byte, and they follow each other with no gap, so every byte lies in exactly one of them and
//! none could be dropped.
#![allow(dead_code)] // Each target uses part of it.

use icache::plan::LineWalk;

/// An input range shaped from raw fuzz bytes: `shape` biases it towards short lengths and the
/// top of the address space, where the mistakes live, without excluding anything.
pub fn shape_range(start: usize, len: usize, shape: u8) -> (usize, usize) {
    let start = if shape & 1 != 0 {
        usize::MAX - (start & 0xf_ffff)
    } else {
        start
    };
    let len = if shape & 2 != 0 { len & 0x1_ffff } else { len };
    (start, len)
}

/// The last byte of a non-empty range, or `None` if it would be past the address space.
pub fn last_of(start: usize, len: usize) -> Option<usize> {
    let last = start as u128 + len as u128 - 1;
    usize::try_from(last).ok()
}

/// Checks `w` is exactly the lines of `1 << line_log2` bytes that hold the bytes
/// `start..=last`.
pub fn check_walk(w: LineWalk, start: usize, last: usize, line_log2: u32) {
    assert_eq!(w.line_log2(), line_log2, "{w:?}");
    let step = 1u128 << line_log2;
    assert_eq!(w.step() as u128, step, "{w:?}");
    let first = w.first() as u128;
    let (start, last) = (start as u128, last as u128);
    assert_eq!(first % step, 0, "first line not aligned: {w:?}");
    assert!(w.count() >= 1, "{w:?}");
    assert_eq!(w.more() as u128 + 1, w.count() as u128, "{w:?}");
    assert!(
        first <= start && start < first + step,
        "start {start:#x} not in the first line: {w:?}"
    );
    let last_line = first + (w.count() as u128 - 1) * step;
    assert!(
        last_line <= last && last < last_line + step,
        "last {last:#x} not in the last line: {w:?}"
    );

    // The addresses themselves: consecutive lines, as many as counted. Bounded so a huge walk
    // (a whole address space of 4-byte lines) is checked by the arithmetic above alone.
    if w.count() <= 1 << 16 {
        let mut n = 0u128;
        for a in w.addresses() {
            assert_eq!(a as u128, first + n * step, "line {n} of {w:?}");
            n += 1;
        }
        assert_eq!(n, w.count() as u128, "{w:?}");
    }

    // For short ranges, literally: each byte is in exactly one walked line, and each walked
    // line holds at least one byte.
    if last - start < 512 && w.count() <= 512 {
        let lines: Vec<u128> = w.addresses().map(|a| a as u128).collect();
        for b in start..=last {
            let holding = lines.iter().filter(|&&l| l <= b && b < l + step).count();
            assert_eq!(holding, 1, "byte {b:#x} is in {holding} lines of {w:?}");
        }
        for &l in &lines {
            assert!(
                l <= last && start < l + step,
                "line {l:#x} holds no byte: {w:?}"
            );
        }
    }
}
