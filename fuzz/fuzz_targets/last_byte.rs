//! `last_byte` against wide arithmetic: `None` exactly for an empty range, the last byte when
//! the range fits in the address space (ending at its very top included), an error otherwise.
#![no_main]

mod model;

use icache::plan::last_byte;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (usize, usize, u8)| {
    let (start, len, shape) = input;
    let (start, len) = model::shape_range(start, len, shape);
    let want = if len == 0 {
        None
    } else {
        Some(model::last_of(start, len).ok_or(()))
    };
    assert_eq!(last_byte(start, len), want, "start {start:#x} len {len:#x}");
});
