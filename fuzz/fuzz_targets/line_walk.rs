//! `LineWalk::new` for every non-empty range that does not wrap and every line size a `usize`
//! can hold (biased towards the 4 B to 128 KiB that `CTR_EL0` can report): exactly the lines
//! that hold the range's bytes, with no panic or overflow on the way.
#![no_main]

mod model;

use icache::plan::{last_byte, LineWalk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (usize, usize, u8, u8)| {
    let (start, len, size, shape) = input;
    let (start, len) = model::shape_range(start, len, shape);
    let line_log2 = if shape & 4 != 0 {
        2 + u32::from(size) % 16
    } else {
        u32::from(size) % usize::BITS
    };
    // LineWalk's precondition, in the crate's own words; last_byte has its own target.
    let Some(Ok(last)) = last_byte(start, len) else {
        return;
    };
    model::check_walk(LineWalk::new(start, len, line_log2), start, last, line_log2);
});
