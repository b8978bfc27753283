//! `Span::new` against wide arithmetic: `Ok(None)` exactly for an empty range, a span with the
//! right first and last byte when the range fits in the address space (ending at its very top
//! included), `WrapsAround` otherwise; and `hull` against the model's bounds.
#![no_main]

mod model;

use icache::plan::{Span, WrapsAround};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (usize, usize, u8, usize, usize)| {
    let (start, len, shape, other_start, other_len) = input;
    let (start, len) = model::shape_range(start, len, shape);
    let got = Span::new(start, len);
    if len == 0 {
        assert_eq!(got, Ok(None), "start {start:#x}");
        return;
    }
    let Some(last) = model::last_of(start, len) else {
        assert_eq!(got, Err(WrapsAround), "start {start:#x} len {len:#x}");
        return;
    };
    let span = got
        .expect("a range that fits is accepted")
        .expect("a non-empty range has a span");
    assert_eq!((span.start(), span.last(), span.len()), (start, last, len));
    assert_eq!(
        span.end() as u128,
        (last as u128 + 1).min(usize::MAX as u128)
    );

    let (other_start, other_len) = model::shape_range(other_start, other_len, shape >> 2);
    if let Ok(Some(other)) = Span::new(other_start, other_len) {
        let hull = span.hull(other);
        assert_eq!(hull.start(), start.min(other.start()));
        assert_eq!(hull.last(), last.max(other.last()));
    }
});
