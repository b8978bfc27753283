//! `RangePlan::new` for any span and any `CTR_EL0` value: a D-line walk unless `IDC` and an
//! I-line walk unless `DIC`, each with the line size the register gives and each exactly the
//! lines that hold the range.
#![no_main]

mod model;

use icache::plan::{CtrEl0, RangePlan, Span};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (usize, usize, u64, u8)| {
    let (start, len, raw, shape) = input;
    let (start, len) = model::shape_range(start, len, shape);
    // Empty and wrapping ranges have no span, so no plan (the span target covers them).
    let Ok(Some(span)) = Span::new(start, len) else {
        return;
    };
    let last = span.last();
    let plan = RangePlan::new(span, CtrEl0(raw));
    let (dlog2, ilog2) = (((raw >> 16) & 0xf) as u32 + 2, (raw & 0xf) as u32 + 2);
    match (plan.clean, raw & (1 << 28) != 0) {
        (None, true) => {}
        (Some(w), false) => model::check_walk(w, start, last, dlog2),
        (clean, idc) => panic!("IDC {idc} but clean {clean:?} ({raw:#x})"),
    }
    match (plan.invalidate, raw & (1 << 29) != 0) {
        (None, true) => {}
        (Some(w), false) => model::check_walk(w, start, last, ilog2),
        (invalidate, dic) => panic!("DIC {dic} but invalidate {invalidate:?} ({raw:#x})"),
    }
});
