//! `LineWalk::new` for every non-empty range that does not wrap and every line size a `usize`
//! can hold, and any other value it clamps (biased towards the 4 B to 128 KiB that `CTR_EL0` can report): exactly the lines
//! that hold the range's bytes, with no panic or overflow on the way.
#![no_main]

mod model;

use icache::plan::{LineWalk, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (usize, usize, u8, u8)| {
    let (start, len, size, shape) = input;
    let (start, len) = model::shape_range(start, len, shape);
    let asked = if shape & 4 != 0 {
        2 + u32::from(size) % 16
    } else {
        u32::from(size)
    };
    // Empty and wrapping ranges have no span; the span target covers those.
    let Ok(Some(span)) = Span::new(start, len) else {
        return;
    };
    // Sizes outside what a walk takes are clamped to it.
    let line_log2 = asked.clamp(LineWalk::MIN_LINE_LOG2, LineWalk::MAX_LINE_LOG2);
    let last = span.last();
    model::check_walk(LineWalk::new(span, asked), start, last, line_log2);
});
