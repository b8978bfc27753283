//! Bare-metal AArch64 (EL1, MMU off) check of `icache` under `qemu-system-aarch64 -semihosting`.
//!
//! It writes small functions into a buffer, publishes them with the crate and calls them, twice
//! per slot with different values (so a stale copy would return the old one), across line and
//! buffer offsets; checks what `cache_info` and `pipeline_flush_mt` report without an OS; prints
//! the results over semihosting and exits with status 0 only if every check passed.
//!
//! QEMU does not model instruction caches (it retranslates code it sees written), so this proves
//! that the bare-metal path runs at EL1 (the `CTR_EL0` read, the `dc cvau`/`ic ivau` loops, the
//! barriers) and returns what it documents, not that a real core would otherwise run stale code.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::fmt::Write;

// Entry: enable FP/SIMD at EL1 (CPACR_EL1.FPEN = 0b11; Rust code may use the vector registers),
// set the stack, call `main`. The CPU starts at EL1 on `-M virt` without EL2/EL3 enabled.
global_asm!(
    ".section .text.boot, \"ax\"",
    ".global _start",
    "_start:",
    "mov x0, #(3 << 20)",
    "msr cpacr_el1, x0",
    "isb",
    "ldr x0, =__stack_top",
    "mov sp, x0",
    "bl main",
    "1: b 1b",
);

/// One semihosting call (`hlt #0xf000` on AArch64): operation in w0, parameter in x1.
fn semihost(op: u32, param: usize) -> usize {
    let ret: usize;
    // SAFETY: QEMU's semihosting reads `param` as described for `op`; the callers pass valid
    // blocks. Not `nomem`: the host reads our memory.
    unsafe {
        asm!("hlt #0xf000", inlateout("x0") op as usize => ret, in("x1") param, options(nostack))
    };
    ret
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SYS_WRITEC (0x03) per byte: needs no terminator, and output is short.
        for b in s.bytes() {
            semihost(0x03, &b as *const u8 as usize);
        }
        Ok(())
    }
}

/// SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit (0x20026) and the status as subcode.
fn exit(status: usize) -> ! {
    let block = [0x20026usize, status];
    semihost(0x18, block.as_ptr() as usize);
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Console, "baremetal: panic: {info}");
    exit(101)
}

/// `movz w0, #value; ret`.
fn ret_imm(value: u16) -> [u32; 2] {
    [0x5280_0000 | (u32::from(value) << 5), 0xd65f_03c0]
}

/// Code buffer: MMU off, so every address is executable. 4-byte aligned as instructions need.
#[repr(align(4096))]
struct Buffer([u32; 4096]);
static mut CODE: Buffer = Buffer([0; 4096]);

#[no_mangle]
extern "C" fn main() -> ! {
    let mut out = Console;
    let mut failures = 0usize;
    let mut checks = 0usize;

    let info = icache::cache_info();
    let _ = writeln!(out, "baremetal: cache_info = {info:?}");
    checks += 1;
    if info.maintenance != icache::Maintenance::Instructions
        || !matches!(info.icache_line, Some(l) if l.is_power_of_two() && l >= 4)
        || !matches!(info.dcache_line, Some(l) if l.is_power_of_two() && l >= 4)
    {
        failures += 1;
        let _ = writeln!(out, "baremetal: FAIL cache_info");
    }

    checks += 1;
    match icache::pipeline_flush_mt() {
        Err(e) if e.kind() == icache::ErrorKind::Unsupported => {}
        other => {
            failures += 1;
            let _ = writeln!(out, "baremetal: FAIL pipeline_flush_mt = {other:?}");
        }
    }

    // SAFETY: single-threaded program; the only access to CODE is through this pointer.
    let base = unsafe { core::ptr::addr_of_mut!(CODE.0) }.cast::<u32>();
    // Word offsets: line starts, a function straddling a 64-byte line, the far end.
    let slots = [0usize, 14, 15, 31, 1000, 4094];
    for (round, &slot) in slots.iter().enumerate() {
        for value in [100 + round as u16, 200 + round as u16] {
            let code = ret_imm(value);
            // SAFETY: `slot + 2 <= 4096` words, inside CODE.
            let at = unsafe { base.add(slot) };
            // SAFETY: as above; volatile so the stores are really made before publishing.
            unsafe {
                at.write_volatile(code[0]);
                at.add(1).write_volatile(code[1]);
            }
            checks += 1;
            // SAFETY: 8 bytes inside CODE, mapped (MMU off: all RAM).
            if let Err(e) = unsafe { icache::clear_cache(at as *const _, 8) } {
                failures += 1;
                let _ = writeln!(out, "baremetal: FAIL clear_cache: {e}");
                continue;
            }
            // SAFETY: a complete function was just published at `at`.
            let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(at) };
            let got = f();
            if got != u32::from(value) {
                failures += 1;
                let _ = writeln!(out, "baremetal: FAIL slot {slot}: got {got}, want {value}");
            }
        }
    }

    // The batch form: two functions, one call.
    let (a, b) = (ret_imm(7), ret_imm(9));
    // SAFETY: words 100..102 and 3000..3002 are inside CODE.
    let (pa, pb) = unsafe { (base.add(100), base.add(3000)) };
    // SAFETY: as above.
    unsafe {
        pa.write_volatile(a[0]);
        pa.add(1).write_volatile(a[1]);
        pb.write_volatile(b[0]);
        pb.add(1).write_volatile(b[1]);
    }
    checks += 1;
    // SAFETY: both ranges are inside CODE.
    match unsafe { icache::clear_cache_many(&[(pa as *const _, 8), (pb as *const _, 8)]) } {
        Ok(()) => {
            // SAFETY: both functions were just published.
            let (fa, fb): (extern "C" fn() -> u32, extern "C" fn() -> u32) =
                unsafe { (core::mem::transmute(pa), core::mem::transmute(pb)) };
            if (fa(), fb()) != (7, 9) {
                failures += 1;
                let _ = writeln!(out, "baremetal: FAIL clear_cache_many");
            }
        }
        Err(e) => {
            failures += 1;
            let _ = writeln!(out, "baremetal: FAIL clear_cache_many: {e}");
        }
    }

    let _ = writeln!(
        out,
        "baremetal: {} of {checks} checks passed",
        checks - failures
    );
    exit(if failures == 0 { 0 } else { 1 })
}
