//! `RangePlan::new` for any range and any `CTR_EL0` value: nothing for an empty range; else a
//! D-line walk unless `IDC` and an I-line walk unless `DIC`, each with the line size the
//! register gives and each exactly the lines that hold the range.
#![no_main]

mod model;

use icache::plan::{CtrEl0, RangePlan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (usize, usize, u64, u8)| {
    let (start, len, raw, shape) = input;
    let (start, len) = model::shape_range(start, len, shape);
    if len == 0 {
        // Empty: nothing to do at all.
        assert_eq!(RangePlan::new(start, len, CtrEl0(raw)), None);
        return;
    }
    // A wrapping range is the caller's to reject (RangePlan's contract; see `last_byte`).
    let Some(last) = model::last_of(start, len) else {
        return;
    };
    let plan = RangePlan::new(start, len, CtrEl0(raw)).expect("a non-empty range has a plan");
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
