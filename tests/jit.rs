//! End-to-end JIT tests: write real machine code, make it coherent with this crate, run it.
//!
//! What they prove depends on where they run. Natively on a machine with non-coherent caches
//! (AArch64, RISC-V, 32-bit Arm hardware) a missed line, a missing barrier or a missing
//! cross-thread flush makes a call run stale bytes and return the wrong value or fault. Under
//! qemu-user they cannot: the emulator retranslates any code page that is written, so a
//! missing flush is invisible there. Under emulation these tests prove that every call is legal
//! (no fault on any line size, offset or page-straddling range, batch APIs included), that the
//! error paths behave, and that the publish protocol of a JIT (write, `clear_cache`, atomic
//! jump patch, `pipeline_flush_mt`, release) is sound as written.
// mmap, mprotect and the membarrier-backed flush: Unix only (Windows has tests/windows_jit.rs).
#![cfg(unix)]

mod common;

use common::native::{self, ret_imm, CODE_ALIGN, MAX_RET_IMM_LEN, PATCH_LEN};
use common::{page_size, CodeMap};
use icache::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The encoders, checked against encodings derived by hand from the manuals and cross-checked
/// once with each architecture's GNU assembler and objdump (the output is quoted in comments).
mod encoders {
    use super::common::{aarch64, arm, riscv64, s390x, x86_64};

    #[test]
    fn x86_64_encodings() {
        // b8 2a 00 00 00   mov $0x2a,%eax ; c3   ret
        assert_eq!(x86_64::ret_imm(42), [0xb8, 0x2a, 0, 0, 0, 0xc3]);
        // at 0x6: e9 fb 00 00 00   jmp 0x106 ; 0f 1f 00   nopl (%rax)
        assert_eq!(
            x86_64::jump(0x6, 0x106),
            [0xe9, 0xfb, 0, 0, 0, 0x0f, 0x1f, 0x00]
        );
        assert_eq!(
            x86_64::jump(0x1000, 0x1000),
            [0xe9, 0xfb, 0xff, 0xff, 0xff, 0x0f, 0x1f, 0x00]
        );
    }

    #[test]
    fn aarch64_encodings() {
        // 52800540 mov w0, #0x2a ; d65f03c0 ret
        assert_eq!(
            aarch64::ret_imm(42),
            [0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6]
        );
        // 529fffe0 mov w0, #0xffff
        assert_eq!(aarch64::ret_imm(0xffff)[..4], [0xe0, 0xff, 0x9f, 0x52]);
        // c: 14000002 b 14 ; 10: 17ffffff b c ; 14: 14040000 b 100014
        assert_eq!(aarch64::jump(0xc, 0x14), [0x02, 0, 0, 0x14]);
        assert_eq!(aarch64::jump(0x10, 0xc), [0xff, 0xff, 0xff, 0x17]);
        assert_eq!(aarch64::jump(0x14, 0x100014), [0, 0, 0x04, 0x14]);
    }

    #[test]
    fn riscv64_encodings() {
        let words = |v: &[u8]| -> Vec<u32> {
            v.chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        // 02a00513 li a0,42 ; 00008067 ret
        assert_eq!(words(&riscv64::ret_imm(42)), [0x02a0_0513, 0x0000_8067]);
        // 7ff00513 li a0,2047
        assert_eq!(words(&riscv64::ret_imm(2047)), [0x7ff0_0513, 0x0000_8067]);
        // 00001537 lui a0,0x1 ; 80050513 addi a0,a0,-2048
        assert_eq!(
            words(&riscv64::ret_imm(2048)),
            [0x0000_1537, 0x8005_0513, 0x0000_8067]
        );
        // 00010537 lui a0,0x10 ; fff50513 addi a0,a0,-1
        assert_eq!(
            words(&riscv64::ret_imm(0xffff)),
            [0x0001_0537, 0xfff5_0513, 0x0000_8067]
        );
        // 00001537 lui a0,0x1 ; 00150513 addi a0,a0,1
        assert_eq!(
            words(&riscv64::ret_imm(0x1001)),
            [0x0000_1537, 0x0015_0513, 0x0000_8067]
        );
        // 24: 0080006f j 2c ; 28: ffdff06f j 24 ; 2c: 7ff7f06f j 8002a ;
        // 30: 8000006f j -0x100000+0x30 ; 34: 0010006f j 834
        assert_eq!(words(&riscv64::jump(0x24, 0x2c)), [0x0080_006f]);
        assert_eq!(words(&riscv64::jump(0x28, 0x24)), [0xffdf_f06f]);
        assert_eq!(words(&riscv64::jump(0x2c, 0x8002a)), [0x7ff7_f06f]);
        assert_eq!(words(&riscv64::jump(0x10_0030, 0x30)), [0x8000_006f]);
        assert_eq!(words(&riscv64::jump(0x34, 0x834)), [0x0010_006f]);
    }

    #[test]
    fn arm_encodings() {
        // e300002a movw r0, #42 ; e12fff1e bx lr
        assert_eq!(
            arm::ret_imm(42),
            [0x2a, 0x00, 0x00, 0xe3, 0x1e, 0xff, 0x2f, 0xe1]
        );
        // e30a0bcd movw r0, #43981
        assert_eq!(arm::ret_imm(0xabcd)[..4], [0xcd, 0x0b, 0x0a, 0xe3]);
        // c: ea000000 b 14 ; 10: eafffffd b c ; 14: ea0003fe b 1014
        assert_eq!(arm::jump(0xc, 0x14), [0, 0, 0, 0xea]);
        assert_eq!(arm::jump(0x10, 0xc), [0xfd, 0xff, 0xff, 0xea]);
        assert_eq!(arm::jump(0x14, 0x1014), [0xfe, 0x03, 0, 0xea]);
    }

    #[test]
    fn s390x_encodings() {
        // a7 29 00 2a lghi %r2,42 ; 07 fe br %r14
        assert_eq!(s390x::ret_imm(42), [0xa7, 0x29, 0x00, 0x2a, 0x07, 0xfe]);
        // a5 2f 80 00 llill %r2,32768
        assert_eq!(s390x::ret_imm(0x8000), [0xa5, 0x2f, 0x80, 0x00, 0x07, 0xfe]);
        // a: a7 f4 00 04 j 0x12 ; e: a7 f4 ff fe j 0xa ; 12: a7 f4 08 00 j 0x1012
        assert_eq!(s390x::jump(0xa, 0x12), [0xa7, 0xf4, 0x00, 0x04]);
        assert_eq!(s390x::jump(0xe, 0xa), [0xa7, 0xf4, 0xff, 0xfe]);
        assert_eq!(s390x::jump(0x12, 0x1012), [0xa7, 0xf4, 0x08, 0x00]);
    }

    #[test]
    fn patchable_jumps_have_the_patch_size() {
        assert_eq!(x86_64::jump(0, 64).len(), 8);
        assert_eq!(aarch64::jump(0, 64).len(), 4);
        assert_eq!(riscv64::jump(0, 64).len(), 4);
        assert_eq!(arm::jump(0, 64).len(), 4);
        assert_eq!(s390x::jump(0, 64).len(), 4);
    }
}

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A start offset inside `map_len` that puts `len` bytes across a boundary of `line` bytes
/// (a cache line of some machine, or a page), at a legal instruction alignment.
fn straddling_offset(rng: &mut Rng, map_len: usize, line: usize, len: usize) -> usize {
    let boundaries = (map_len - MAX_RET_IMM_LEN) / line;
    let boundary = line * (1 + rng.below(boundaries.max(1)));
    let before = 1 + rng.below(len.saturating_sub(1).max(1));
    let start = boundary.saturating_sub(before) / CODE_ALIGN * CODE_ALIGN;
    start.min((map_len - len) / CODE_ALIGN * CODE_ALIGN)
}

/// Line sizes to straddle: every size seen on real cores (32 to 256 bytes), whatever this
/// crate reports, and the page.
fn boundaries() -> Vec<usize> {
    let mut v = vec![32, 64, 128, 256, page_size()];
    if let Some(line) = icache::cache_info().icache_line {
        v.push(line);
    }
    v
}

/// `clear_cache` exactly the written bytes, make RX, call; returns what the code returned.
fn publish_and_call(map: &mut CodeMap, offset: usize, code: &[u8]) -> u32 {
    map.make_rw().unwrap();
    map.write(offset, code);
    // SAFETY: the range lies inside the live mapping, which is readable.
    unsafe { icache::clear_cache(map.ptr_at(offset), code.len()) }.unwrap();
    map.make_rx().unwrap();
    // SAFETY: a complete function was written at `offset`, made coherent, and is executable.
    let f = unsafe { map.func(offset) };
    f()
}

/// Rewrites one function `rounds` times with random values. Half the rounds rewrite the
/// previous function in place with a new value; the others move it across a line or page
/// boundary (and on RISC-V change its length). With `max_pad` above 0 a random nop sled of up
/// to that many bytes goes in front. `run` writes the code at an offset, makes it coherent and
/// returns what calling it returned.
fn rewrite_rounds(
    seed: u64,
    rounds: u32,
    map_len: usize,
    max_pad: usize,
    mut run: impl FnMut(usize, &[u8]) -> u32,
) {
    let lines = boundaries();
    let mut rng = Rng(seed);
    let mut offset = 0;
    for i in 0..rounds {
        let value = (rng.next() % 0x1_0000) as u16;
        let code = match max_pad {
            0 => ret_imm(value),
            _ => native::sled_ret_imm(rng.below(max_pad + 1), value),
        };
        if i % 2 == 1 {
            let line = lines[rng.below(lines.len())];
            offset = straddling_offset(&mut rng, map_len, line, code.len());
        }
        assert_eq!(
            run(offset, &code),
            u32::from(value),
            "round {i}: code at offset {offset:#x} returned a stale value"
        );
    }
}

#[test]
fn single_thread_rewrite_in_place() {
    let mut map = CodeMap::new(3 * page_size()).unwrap();

    let first = ret_imm(42);
    assert_eq!(publish_and_call(&mut map, 0, &first), 42);
    assert_eq!(publish_and_call(&mut map, 0, &ret_imm(43)), 43);

    let len = map.len();
    rewrite_rounds(0x1234_5678_9abc_def1, 600, len, 0, |offset, code| {
        publish_and_call(&mut map, offset, code)
    });
}

/// The same rewriting in an RWX mapping, as JITs without W^X do: no system call (whose return
/// would synchronise this core by itself on AArch64) separates `clear_cache` from the call, so
/// the crate's own `isb` is what makes this thread fetch the new code. Under the coherence
/// checker a missing `isb` fails here.
#[test]
fn single_thread_rewrite_rwx_without_system_calls() {
    let mut map = CodeMap::new(2 * page_size()).unwrap();
    map.make_rwx().unwrap();
    let len = map.len();
    rewrite_rounds(0x0fed_cba9_8765_4321, 200, len, 0, |offset, code| {
        map.write(offset, code);
        // SAFETY: the range lies inside the live mapping, which is readable.
        unsafe { icache::clear_cache(map.ptr_at(offset), code.len()) }.unwrap();
        // SAFETY: a complete function was written at `offset`, made coherent; RWX.
        let f = unsafe { map.func(offset) };
        f()
    });
}

/// Places `values.len()` functions at non-overlapping offsets, most of them across a line
/// boundary; returns (offset, code) pairs.
fn layout(rng: &mut Rng, values: &[u16], slot: usize) -> Vec<(usize, Vec<u8>)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let code = ret_imm(v);
            // Each function gets its own `slot`-sized region and sits across the 64-byte line in
            // its middle, shifted by a random legal amount.
            let mid = i * slot + slot / 2;
            let shift = rng.below(code.len()) / CODE_ALIGN * CODE_ALIGN;
            (mid - shift, code)
        })
        .collect()
}

fn write_all(map: &mut CodeMap, funcs: &[(usize, Vec<u8>)]) {
    map.make_rw().unwrap();
    for (off, code) in funcs {
        map.write(*off, code);
    }
}

fn call_all(map: &mut CodeMap, funcs: &[(usize, Vec<u8>)], values: &[u16], api: &str) {
    map.make_rx().unwrap();
    for ((off, _), &v) in funcs.iter().zip(values) {
        // SAFETY: a complete function was written there, made coherent, and is executable.
        let f = unsafe { map.func(*off) };
        assert_eq!(f(), u32::from(v), "{api}: function at {off:#x} is stale");
    }
}

#[test]
fn batch_apis_publish_every_function() {
    const N: usize = 12;
    const SLOT: usize = 128;
    let mut map = CodeMap::new(N * SLOT).unwrap();
    let mut rng = Rng(0x0bad_cafe_f00d_0001);
    for round in 0..40u16 {
        let values: Vec<u16> = (0..N as u16).map(|i| round * 1000 + i * 7 + 1).collect();
        let funcs = layout(&mut rng, &values, SLOT);

        // One range per function, one call for the batch.
        write_all(&mut map, &funcs);
        let ranges: Vec<_> = funcs
            .iter()
            .map(|(off, code)| (map.ptr_at(*off), code.len()))
            .collect();
        // SAFETY: every range lies inside the live, readable mapping.
        unsafe { icache::clear_cache_many(&ranges) }.unwrap();
        call_all(&mut map, &funcs, &values, "clear_cache_many");

        // The same, rewritten with new values, through the safe slice batch.
        let values: Vec<u16> = values.iter().map(|v| v + 500).collect();
        let funcs = layout(&mut rng, &values, SLOT);
        write_all(&mut map, &funcs);
        {
            let slices: Vec<&[u8]> = funcs
                .iter()
                .map(|(off, code)| map.slice(*off, code.len()))
                .collect();
            icache::clear_cache_slices(&slices).unwrap();
        }
        call_all(&mut map, &funcs, &values, "clear_cache_slices");

        // And one slice at a time.
        let values: Vec<u16> = values.iter().map(|v| v + 250).collect();
        let funcs = layout(&mut rng, &values, SLOT);
        write_all(&mut map, &funcs);
        for (off, code) in &funcs {
            icache::clear_cache_slice(map.slice(*off, code.len())).unwrap();
        }
        call_all(&mut map, &funcs, &values, "clear_cache_slice");
    }
}

#[test]
fn empty_ranges_succeed_whatever_the_pointer() {
    let dangling = core::ptr::NonNull::<u8>::dangling().as_ptr() as *const _;
    // SAFETY: a zero-length range touches no memory.
    unsafe {
        assert_eq!(icache::clear_cache(core::ptr::null(), 0), Ok(()));
        assert_eq!(icache::clear_cache(dangling, 0), Ok(()));
        assert_eq!(icache::clear_cache(usize::MAX as *const _, 0), Ok(()));
        assert_eq!(
            icache::clear_cache_many(&[(core::ptr::null(), 0), (dangling, 0)]),
            Ok(())
        );
        assert_eq!(icache::clear_cache_many(&[]), Ok(()));
    }
    assert_eq!(icache::clear_cache_slice(&[]), Ok(()));
    assert_eq!(icache::clear_cache_slices(&[]), Ok(()));
    assert_eq!(icache::clear_cache_slices(&[&[], &[]]), Ok(()));
}

#[test]
fn wrapping_ranges_are_invalid_input() {
    let map = CodeMap::new(page_size()).unwrap();
    let cases: [(usize, usize); 4] = [
        (usize::MAX, 2),
        (2, usize::MAX),
        (usize::MAX - 10, 12),
        (map.addr(), usize::MAX),
    ];
    for (start, len) in cases {
        // SAFETY: a wrapping range is rejected before any memory is touched (the property under
        // test; if it failed, the maintenance would fault and fail the test loudly).
        let e = unsafe { icache::clear_cache(start as *const _, len) }.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "({start:#x}, {len:#x})");
        assert_eq!(e.raw_os_error(), None);
    }
    // In a batch, one bad range rejects the whole batch, even after good ones.
    let good = (map.ptr_at(0), 16);
    // SAFETY: as above; the good range is inside the live, readable mapping.
    let e = unsafe { icache::clear_cache_many(&[good, (usize::MAX as *const _, 2)]) }.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// The conversion exists with the `std` feature (on by default).
#[cfg(feature = "std")]
#[test]
fn error_converts_into_io_error() {
    // SAFETY: a wrapping range is rejected before any memory is touched.
    let e = unsafe { icache::clear_cache(usize::MAX as *const _, 2) }.unwrap_err();
    let io: std::io::Error = e.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(io.raw_os_error(), None);
    assert!(io.to_string().contains("clear_cache"), "{io}");
    // The original error is kept as the source.
    let inner = io.get_ref().and_then(|r| r.downcast_ref::<icache::Error>());
    assert_eq!(inner, Some(&e));

    // And `?` works in a function returning io::Result.
    fn publish(code: &[u8]) -> std::io::Result<()> {
        icache::clear_cache_slice(code)?;
        // SAFETY: a wrapping range is rejected before any memory is touched.
        unsafe { icache::clear_cache(usize::MAX as *const _, 2) }?;
        Ok(())
    }
    let err = publish(&[0; 8]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

/// Offsets in the shared RWX mapping of the multi-threaded test.
const ENTRY: usize = 0;
const FIRST_SLOT: usize = 64;
const SLOT: usize = 16;

/// Readers repeatedly read the published generation (Acquire) and then call the entry; the
/// code they run must return at least that generation. One patcher writes each generation to a
/// fresh slot, makes it coherent, swings the entry's jump to it, makes that coherent, flushes
/// every thread's pipeline and only then publishes the generation (Release).
#[test]
fn multi_thread_publish() {
    const GENERATIONS: u32 = 400;
    const READERS: usize = 2;
    const MIN_GENERATIONS: u32 = 20;
    let time_limit = Duration::from_secs(3);

    let mut map = CodeMap::new(FIRST_SLOT + SLOT * (GENERATIONS as usize + 1)).unwrap();
    map.make_rwx().unwrap();
    let map = Arc::new(map);
    let slot = |k: u32| FIRST_SLOT + SLOT * k as usize;
    let entry_addr = map.addr() + ENTRY;
    assert_eq!(entry_addr % PATCH_LEN, 0);

    // Generation 0, before any reader exists.
    // SAFETY: no thread runs this mapping yet.
    unsafe {
        map.write_unpublished(slot(0), &ret_imm(0));
        map.patch(ENTRY, &native::jump(entry_addr, map.addr() + slot(0)));
    }
    // SAFETY: the range is inside the live, readable mapping.
    unsafe { icache::clear_cache(map.ptr_at(0), slot(1)) }.unwrap();
    // Registers the flush now, as a JIT would at start-up.
    let flushing = common::flush_mt_or_fail();

    let generation = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicUsize::new(0));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (map, generation, done, max_seen, calls) = (
                map.clone(),
                generation.clone(),
                done.clone(),
                max_seen.clone(),
                calls.clone(),
            );
            std::thread::spawn(move || {
                // SAFETY: the entry always holds a complete jump to a complete, coherent
                // function (the patcher's protocol); the mapping stays RWX and alive (Arc).
                let entry = unsafe { map.func(ENTRY) };
                let mut n = 0usize;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let g = generation.load(Ordering::Acquire);
                    let v = entry();
                    n += 1;
                    if v < g || v > GENERATIONS {
                        calls.fetch_add(n, Ordering::Relaxed);
                        return Err(format!("published generation {g}, the code returned {v}"));
                    }
                    max_seen.fetch_max(g, Ordering::Relaxed);
                    if finished {
                        calls.fetch_add(n, Ordering::Relaxed);
                        return Ok(v);
                    }
                }
            })
        })
        .collect();

    let start = Instant::now();
    let mut last = 0;
    for k in 1..=GENERATIONS {
        // The time limit ends the test early only once it has tested enough generations: slow
        // emulators (RISC-V under full-system TCG) then take longer instead of failing.
        if start.elapsed() > time_limit && k > MIN_GENERATIONS {
            break;
        }
        let s = slot(k);
        let code = ret_imm(k as u16);
        // SAFETY: slot k is fresh: no jump has ever led there.
        unsafe { map.write_unpublished(s, &code) };
        // SAFETY: inside the live, readable mapping.
        unsafe { icache::clear_cache(map.ptr_at(s), code.len()) }.unwrap();
        // The readers keep running through the entry, so one may take the new jump before the
        // flush below: every reader must already have synchronised after slot k became
        // coherent (Arm ARM: a context synchronisation on the executing core after the
        // invalidation completes), or it may run stale bytes of slot k.
        common::flush_mt_or_fail();
        // SAFETY: the entry is only ever written by `patch`; the mapping is RWX.
        unsafe { map.patch(ENTRY, &native::jump(entry_addr, map.addr() + s)) };
        // SAFETY: as above.
        unsafe { icache::clear_cache(map.ptr_at(ENTRY), PATCH_LEN) }.unwrap();
        common::flush_mt_or_fail();
        generation.store(k, Ordering::Release);
        last = k;
        // Let a reader run generation k before the next patch, so every generation is tested.
        let wait = Instant::now();
        while max_seen.load(Ordering::Relaxed) < k && wait.elapsed() < Duration::from_millis(10) {
            std::thread::yield_now();
        }
    }
    done.store(true, Ordering::Release);

    for r in readers {
        let final_value = r.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            final_value, last,
            "a reader ran an old entry after the last publish"
        );
    }
    assert!(last >= MIN_GENERATIONS, "only {last} generations");
    eprintln!(
        "multi_thread_publish: {last} generations, {} calls, {READERS} readers, flush {}",
        calls.load(Ordering::Relaxed),
        if flushing {
            "made"
        } else {
            "unsupported (ICACHE_EXPECT_NO_MEMBARRIER)"
        }
    );
}

/// The value generation `g` of a rewritten function returns: distinct for every `g` below
/// 4096, and on RISC-V half of them above 2047, so the code changes length too.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn generation_value(g: u32) -> u16 {
    (g * 1531 % 4096) as u16
}

/// Where generation `g` of a rewritten function lives in a mapping of two pages or more, and
/// its bytes. Even generations rewrite the function at offset 0 in place, odd ones the one
/// across the first page boundary. The nop sled in front changes length every time (up to 300
/// bytes), so the instruction that sets the result moves between cache lines and a call runs
/// through lines that held other bytes before.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn generation_site(g: u32) -> (usize, Vec<u8>) {
    let code = native::sled_ret_imm(g as usize * 84 % 304, generation_value(g));
    let offset = if g % 2 == 0 {
        0
    } else {
        (page_size() - code.len() / 2) / CODE_ALIGN * CODE_ALIGN
    };
    (offset, code)
}

/// One writer (the calling thread) and one reader thread in lock step. For each generation
/// `g`, once the reader acknowledged `g - 1` (so no thread runs the bytes being rewritten),
/// `publish(g)` rewrites the code and the writer releases `g`; the reader, after its acquire
/// load sees `g`, calls `run(g)`, which must return `generation_value(g)`. The reader's loop
/// makes no system call and has no spin hint (an `isb` on AArch64): nothing but the writer's
/// own steps make the new code visible to it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn lockstep_with_reader(
    generations: core::ops::RangeInclusive<u32>,
    run: impl Fn(u32) -> u32 + Send + 'static,
    mut publish: impl FnMut(u32),
) {
    let (first, last) = (*generations.start(), *generations.end());
    let published = Arc::new(AtomicU32::new(first - 1));
    let acked = Arc::new(AtomicU32::new(first - 1));
    let reader = {
        let (published, acked) = (published.clone(), acked.clone());
        std::thread::spawn(move || {
            let mut seen = first - 1;
            while seen < last {
                let g = published.load(Ordering::Acquire);
                if g == seen {
                    continue;
                }
                let v = run(g);
                if v != u32::from(generation_value(g)) {
                    return Err(format!("generation {g} published, the code returned {v}"));
                }
                seen = g;
                acked.store(g, Ordering::Release);
            }
            Ok(())
        })
    };
    'generations: for g in generations {
        while acked.load(Ordering::Acquire) != g - 1 {
            if reader.is_finished() {
                break 'generations; // it failed: join says why
            }
            std::hint::spin_loop();
        }
        publish(g);
        published.store(g, Ordering::Release);
    }
    reader.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
}

/// Linux RISC-V: which `clear_cache` path this process takes: `fence.i` (the kernel accepted
/// the `prctl`, Linux 6.10+) or `riscv_flush_icache` (refused: older kernels, seccomp, stock
/// qemu-user). `ICACHE_EXPECT_RISCV_PATH` (`fence.i` or `syscall`), set by `.ci/kernels.sh` and
/// `.ci/coherence.sh`, makes it a check rather than a report.
#[cfg(all(target_arch = "riscv64", target_os = "linux"))]
#[test]
fn riscv_reports_its_clear_cache_path() {
    let path = match icache::cache_info().maintenance {
        icache::Maintenance::Instructions => "fence.i",
        icache::Maintenance::SystemCall => "syscall",
        other => panic!("Linux RISC-V reports {other:?}"),
    };
    eprintln!("riscv_reports_its_clear_cache_path: clear_cache takes the {path} path");
    // `pipeline_flush_local` takes the same answer from the kernel.
    assert_eq!(icache::pipeline_flush_local().is_ok(), path == "fence.i");
    if let Ok(want) = std::env::var("ICACHE_EXPECT_RISCV_PATH") {
        assert_eq!(path, want, "ICACHE_EXPECT_RISCV_PATH");
    }
}

/// Linux RISC-V, another thread running code the writer rewrites. Where the kernel refused the
/// `prctl`, `clear_cache` is `riscv_flush_icache(start, end, 0)`, which makes every hart running
/// the process fetch anew: the writer does nothing more, and with flags 1 (the calling hart
/// only, as wasmtime passes) the reader could run stale bytes, which the coherence checker
/// reports (`fence-i-other-hart`) and qemu-user alone cannot show. On the `fence.i` path
/// `clear_cache` serves the writer's hart only, so the writer follows the documented sequence
/// and calls `pipeline_flush_mt`.
#[cfg(all(target_arch = "riscv64", target_os = "linux"))]
#[test]
fn riscv_rewrites_reach_another_hart() {
    let fence_i_path = icache::cache_info().maintenance == icache::Maintenance::Instructions;
    let mut map = CodeMap::new(page_size()).unwrap();
    map.make_rwx().unwrap();
    let map = Arc::new(map);
    let reader_map = map.clone();
    lockstep_with_reader(
        1..=20,
        // SAFETY: a complete function is there once its generation is published; it is
        // rewritten only after this thread acknowledged it.
        move |_| unsafe { reader_map.func(0) }(),
        |g| {
            let code = ret_imm(generation_value(g));
            // SAFETY: the reader acknowledged generation g - 1 and waits for g: nobody runs it.
            unsafe { map.write_unpublished(0, &code) };
            // SAFETY: inside the live, readable mapping.
            unsafe { icache::clear_cache(map.ptr_at(0), code.len()) }.unwrap();
            if fence_i_path {
                icache::pipeline_flush_mt().unwrap();
            }
        },
    );
}

/// The reader-side protocol: the writer only makes each new function coherent
/// (`clear_cache`) and publishes its address with a release store; every reader, after its
/// acquire load observes a new address, calls `pipeline_flush_local` and then runs it. No
/// `membarrier`, no system call in the readers' loop: under the coherence checker a reader that
/// skipped the local sync is flagged.
#[test]
fn readers_sync_locally_without_membarrier() {
    const GENERATIONS: u32 = 30;
    const READERS: usize = 2;
    if let Err(e) = icache::pipeline_flush_local() {
        // Linux RISC-V before 6.10 and stock qemu-user refuse the prctl (the QEMU that
        // .ci/qemu10.sh builds accepts it); PowerPC has no instruction. Nothing to test then.
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        eprintln!("readers_sync_locally_without_membarrier: skipped: {e}");
        return;
    }
    let slot = 64usize.max(MAX_RET_IMM_LEN.next_multiple_of(CODE_ALIGN));
    let mut map = CodeMap::new(slot * (GENERATIONS as usize + 1)).unwrap();
    map.make_rwx().unwrap();
    let map = Arc::new(map);
    let entry = Arc::new(AtomicUsize::new(0)); // offset + 1 of the newest function; 0: none
    let acks = Arc::new(AtomicU32::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (map, entry, acks) = (map.clone(), entry.clone(), acks.clone());
            std::thread::spawn(move || {
                let mut seen = 0u32;
                while seen < GENERATIONS {
                    let e = entry.load(Ordering::Acquire);
                    if e == 0 || (e - 1) / slot == seen as usize {
                        continue; // nothing new: no call, no system call, no spin hint (an isb)
                    }
                    let g = ((e - 1) / slot) as u32;
                    icache::pipeline_flush_local().unwrap();
                    // SAFETY: a complete function was written at `e - 1` and made coherent
                    // before its address was published; it is never rewritten; RWX mapping.
                    let v = unsafe { map.func(e - 1) }();
                    if v != g {
                        return Err(format!("generation {g} published, the code returned {v}"));
                    }
                    seen = g;
                    acks.fetch_add(1, Ordering::Release);
                }
                Ok(())
            })
        })
        .collect();
    for g in 1..=GENERATIONS {
        // Each reader acknowledges every generation before the next is published.
        while acks.load(Ordering::Acquire) < (g - 1) * READERS as u32 {
            std::thread::yield_now();
        }
        let offset = g as usize * slot;
        let code = ret_imm(g as u16);
        // SAFETY: slot g is fresh: no address of it was published yet.
        unsafe { map.write_unpublished(offset, &code) };
        // SAFETY: inside the live, readable mapping.
        unsafe { icache::clear_cache(map.ptr_at(offset), code.len()) }.unwrap();
        entry.store(offset + 1, Ordering::Release);
    }
    for r in readers {
        r.join().unwrap().unwrap();
    }
}

/// The two pages in which the dual-mapping tests rewrite their code, and the distance between
/// the copies of them that successive rounds use: 0, so that every round rewrites code the RX
/// view ran before, unless a user-mode emulator would run stale code there whatever the program
/// does. qemu-user keeps its translations by the address that ran them and sees only stores to
/// that address, so it drops a translation rewritten through the other view only if it models
/// the maintenance at the RX address: QEMU 10 does for AArch64 `ic ivau`, 7.2 does not, and
/// neither has anything to follow on RISC-V, 32-bit Arm or s390x (whose caches are coherent).
/// A probe decides. Where it fails, each round gets fresh pages with the same layout: the tests
/// still check what the emulator can (a `clear_cache` of the RX view is legal, the file holds
/// what RW wrote, the protocol) and lose only the in-place rewriting.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn dual_map_window() -> (usize, usize) {
    let window = 2 * page_size();
    if common::user_mode_emulator() && !emulator_follows_rewrites_through_aliases() {
        eprintln!("dual mapping: this emulator runs stale code there, fresh pages every round");
        (window, window)
    } else {
        (window, 0)
    }
}

/// Whether code rewritten in place through the RW view runs once the architecture's own
/// maintenance was done at the RX address. That maintenance is written out here, not the
/// crate's, which is under test: AArch64 `dc cvau` and `ic ivau` with their barriers; the
/// 32-bit Arm `cacheflush` system call, since an Arm binary on an AArch64 kernel is asked too
/// and runs on real caches; nothing on the others, which are asked only under an emulator.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn emulator_follows_rewrites_through_aliases() -> bool {
    let mut map = common::DualMap::new(page_size()).unwrap();
    let mut run = |value| {
        map.rw.write(0, &ret_imm(value));
        #[cfg(target_arch = "aarch64")]
        // SAFETY: the address is mapped and readable; these only maintain caches and order
        // memory.
        unsafe {
            core::arch::asm!(
                "dc cvau, {a}", "dsb ish", "ic ivau, {a}", "dsb ish", "isb",
                a = in(reg) map.rx.ptr_at(0), options(nostack, preserves_flags)
            );
        }
        #[cfg(target_arch = "arm")]
        // SAFETY: `cacheflush(start, end, 0)` (0x0f0002) checks the range against this
        // process's mappings itself and touches no memory of it.
        unsafe {
            let start = map.rx.ptr_at(0) as usize;
            libc::syscall(0x0f_0002, start, start + MAX_RET_IMM_LEN, 0);
        }
        // SAFETY: a complete function is at the start of the RX view, which is executable (an
        // emulator runs the old or the new one; the probe asks which).
        let f = unsafe { map.rx.func(0) };
        f()
    };
    run(1);
    run(2) == 2
}

/// A W^X JIT's dual mapping: code is written through the RW view only, and `clear_cache` is
/// given the RX view, the address that runs it: an AArch64 I-cache indexed by virtual address
/// (VIPT, which Linux treats as aliasing) is only sure to drop the lines of the address given,
/// and `ic ivau` at EL0 needs that address readable.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn dual_mapping_write_rw_run_rx() {
    const ROUNDS: u32 = 200;
    let (window, stride) = dual_map_window();
    let mut map = common::DualMap::new(window + stride * ROUNDS as usize).unwrap();
    let mut round = 0;
    // A sled of up to 300 bytes, so the code crosses cache lines (and the page boundary when
    // it moves there).
    rewrite_rounds(
        0xd0a1_5eed_0f0f_0001,
        ROUNDS,
        window,
        300,
        |offset, code| {
            let offset = offset + stride * round;
            round += 1;
            map.rw.write(offset, code);
            // SAFETY: the range lies inside the live RX view, which is readable.
            unsafe { icache::clear_cache(map.rx.ptr_at(offset), code.len()) }.unwrap();
            // SAFETY: a complete function is at `offset` of the shared file, made coherent at its
            // RX address, which is executable.
            let f = unsafe { map.rx.func(offset) };
            f()
        },
    );
}

/// The dual mapping with the code run by another thread: the writer writes through RW, makes
/// the RX range coherent, flushes every thread's pipeline and releases the generation.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn dual_mapping_publish_to_another_thread() {
    const GENERATIONS: u32 = 40;
    let (window, stride) = dual_map_window();
    let site = move |g: u32| {
        let (offset, code) = generation_site(g);
        (offset + stride * g as usize, code)
    };
    let map = common::DualMap::new(window + stride * (GENERATIONS as usize + 1)).unwrap();
    let map = Arc::new(map);
    let reader_map = map.clone();
    // Computed here: an allocation in the reader could make a system call, which would
    // synchronise it by itself.
    let offsets: Vec<usize> = (0..=GENERATIONS).map(|g| site(g).0).collect();
    lockstep_with_reader(
        1..=GENERATIONS,
        // SAFETY: generation g's function was written, made coherent at its RX address and
        // every pipeline flushed before g was released; it is rewritten only after this thread
        // acknowledged g; the RX view is executable and alive (Arc).
        move |g| unsafe { reader_map.rx.func(offsets[g as usize]) }(),
        |g| {
            let (offset, code) = site(g);
            // SAFETY: the reader acknowledged g - 1 and waits for g: no thread runs these bytes.
            unsafe { map.rw.write_unpublished(offset, &code) };
            // SAFETY: inside the live RX view, which is readable.
            unsafe { icache::clear_cache(map.rx.ptr_at(offset), code.len()) }.unwrap();
            common::flush_mt_or_fail();
        },
    );
}

/// The forked child of `forked_child_rewrites_and_flushes`: what it runs, and the exit statuses
/// by which it reports a failure.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod fork_child {
    use icache::Error;

    pub const CHILD_CLEAR_FAILED: libc::c_int = 10;
    pub const CHILD_FLUSH_DIFFERS: libc::c_int = 11;
    pub const CHILD_STALE_CODE: libc::c_int = 12;

    /// The forked child's whole work: only what is async-signal-safe after `fork` in a
    /// multi-threaded process (no allocation, no lock, no panic), reported as an exit status.
    ///
    /// # Safety
    /// `entry` is this process's private copy of a writable, executable mapping with room for
    /// `code` there, which nothing else runs.
    pub unsafe fn rewrite_in_forked_child(
        entry: *mut u8,
        code: &[u8],
        want: u32,
        parent_flush: Result<(), Error>,
    ) -> libc::c_int {
        // SAFETY: the caller's contract: writable, large enough, run by nobody else.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), entry, code.len()) };
        // SAFETY: the range is mapped and readable (the caller's contract).
        if unsafe { icache::clear_cache(entry.cast(), code.len()) }.is_err() {
            return CHILD_CLEAR_FAILED;
        }
        if icache::pipeline_flush_mt() != parent_flush {
            return CHILD_FLUSH_DIFFERS;
        }
        // SAFETY: a complete function was just written there and made coherent; executable.
        let f = unsafe { core::mem::transmute::<*mut u8, extern "C" fn() -> u32>(entry) };
        if f() != want {
            return CHILD_STALE_CODE;
        }
        0
    }
}

/// A child made by `fork` inherits the code mappings, the `membarrier` registration (Linux
/// copies it with the address space) and this crate's remembered choice, so it rewrites code
/// and flushes as the parent does, with the same answer from `pipeline_flush_mt` (checked as
/// equal to the parent's even where a sandbox refuses it). The child's write lands in its own
/// copy of the private page: the parent still runs its code. `exec` is not tested: it clears
/// the registration, and the crate's state goes with the old image.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn forked_child_rewrites_and_flushes() {
    let parent_flush = icache::prepare_pipeline_flush().map(|_| ());
    let mut map = CodeMap::new(2 * page_size()).unwrap();
    map.make_rwx().unwrap();
    let (offset, parent_code) = generation_site(1); // across the page boundary
    map.write(offset, &parent_code);
    // SAFETY: inside the live, readable mapping.
    unsafe { icache::clear_cache(map.ptr_at(offset), parent_code.len()) }.unwrap();
    // SAFETY: a complete function was written at `offset` and made coherent; RWX.
    let parent_f = unsafe { map.func(offset) };
    assert_eq!(parent_f(), u32::from(generation_value(1)));

    // Everything the child uses is made before the fork: a longer sled, another value.
    let child_value = 0x7a5c;
    let child_code = native::sled_ret_imm(parent_code.len() + 200, child_value);
    let entry = map.ptr_at(offset).cast_mut().cast::<u8>();
    assert!(offset + child_code.len() <= map.len());
    // SAFETY: the child runs only `rewrite_in_forked_child` and `_exit`, which are
    // async-signal-safe; the parent only waits for it.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: the child's copy of the page is writable and executable, and the child has
        // a single thread; `_exit` ends it without running anything of the parent's.
        unsafe {
            libc::_exit(fork_child::rewrite_in_forked_child(
                entry,
                &child_code,
                u32::from(child_value),
                parent_flush,
            ))
        };
    }
    assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "waitpid: {e}");
    }
    assert!(
        libc::WIFEXITED(status),
        "the child did not exit: status {status:#x}"
    );
    match libc::WEXITSTATUS(status) {
        0 => {}
        fork_child::CHILD_CLEAR_FAILED => panic!("clear_cache failed in the child"),
        fork_child::CHILD_FLUSH_DIFFERS => {
            panic!("pipeline_flush_mt in the child differs from the parent's {parent_flush:?}")
        }
        fork_child::CHILD_STALE_CODE => panic!("the child ran stale code"),
        other => panic!("the child exited with {other}"),
    }
    assert_eq!(
        parent_f(),
        u32::from(generation_value(1)),
        "the child's write reached the parent's page"
    );
    assert_eq!(icache::pipeline_flush_mt(), parent_flush);
}

/// The SIGUSR1 handler of `signal_handler_patches_code` and what it shares with the test.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sigusr1 {
    use icache::ErrorKind;
    use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering};

    /// What the SIGUSR1 handler of `signal_handler_patches_code` writes (a range that outlives the
    /// signal) and where; a null `JOB_DST` means nothing to do.
    static JOB_DST: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
    static JOB_SRC: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
    static JOB_LEN: AtomicUsize = AtomicUsize::new(0);
    /// How often the handler ran, and the outcomes of its last calls.
    static HANDLER_RUNS: AtomicU32 = AtomicU32::new(0);
    static HANDLER_CLEAR: AtomicU8 = AtomicU8::new(NOT_RUN);
    static HANDLER_FLUSH_MT: AtomicU8 = AtomicU8::new(NOT_RUN);
    static HANDLER_FLUSH_LOCAL: AtomicU8 = AtomicU8::new(NOT_RUN);
    const NOT_RUN: u8 = 0;
    const DONE: u8 = 1;
    const UNSUPPORTED: u8 = 2;
    const FAILED: u8 = 3;

    fn outcome(r: Result<(), icache::Error>) -> u8 {
        match r {
            Ok(()) => DONE,
            Err(e) if e.kind() == ErrorKind::Unsupported => UNSUPPORTED,
            Err(_) => FAILED,
        }
    }

    fn errno_location() -> *mut libc::c_int {
        #[cfg(target_os = "android")]
        // SAFETY: returns this thread's errno, valid for the thread's life.
        return unsafe { libc::__errno() };
        #[cfg(not(target_os = "android"))]
        // SAFETY: as above.
        return unsafe { libc::__errno_location() };
    }

    /// Patches code from a signal handler: only atomics, a copy and the crate's calls (barriers,
    /// cache maintenance and system calls), all async-signal-safe; errno is kept for the code the
    /// signal interrupted.
    pub extern "C" fn patch_on_sigusr1(_: libc::c_int) {
        // SAFETY: this thread's errno (see `errno_location`).
        let errno = unsafe { *errno_location() };
        let dst = JOB_DST.load(Ordering::Acquire);
        if !dst.is_null() {
            let (src, len) = (
                JOB_SRC.load(Ordering::Acquire),
                JOB_LEN.load(Ordering::Acquire),
            );
            // SAFETY: `patch_by_signal` stored a source that outlives this handler and a writable
            // destination that no thread runs while it waits in `pthread_kill` for this handler.
            unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
            // SAFETY: the destination is mapped and readable.
            let cleared = unsafe { icache::clear_cache(dst.cast(), len) };
            HANDLER_CLEAR.store(outcome(cleared), Ordering::Relaxed);
            HANDLER_FLUSH_MT.store(outcome(icache::pipeline_flush_mt()), Ordering::Relaxed);
            HANDLER_FLUSH_LOCAL.store(outcome(icache::pipeline_flush_local()), Ordering::Relaxed);
        }
        HANDLER_RUNS.fetch_add(1, Ordering::Release);
        // SAFETY: as above.
        unsafe { *errno_location() = errno };
    }

    /// Raises SIGUSR1 on this thread to have the handler write `code` at `dst`, make it coherent
    /// and flush; checks what the handler reported.
    pub fn patch_by_signal(dst: *mut u8, code: &[u8]) {
        JOB_SRC.store(code.as_ptr().cast_mut(), Ordering::Relaxed);
        JOB_LEN.store(code.len(), Ordering::Relaxed);
        JOB_DST.store(dst, Ordering::Release);
        for o in [&HANDLER_CLEAR, &HANDLER_FLUSH_MT, &HANDLER_FLUSH_LOCAL] {
            o.store(NOT_RUN, Ordering::Relaxed);
        }
        let runs = HANDLER_RUNS.load(Ordering::Relaxed);
        const SENTINEL: libc::c_int = 4242;
        // SAFETY: this thread's errno.
        unsafe { *errno_location() = SENTINEL };
        // SAFETY: signals this very thread, which is alive; the handler is installed.
        let r = unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR1) };
        // SAFETY: this thread's errno.
        let errno = unsafe { *errno_location() };
        JOB_DST.store(core::ptr::null_mut(), Ordering::Relaxed);
        assert_eq!(r, 0, "pthread_kill");
        // A signal a thread sends itself, unblocked, is handled before pthread_kill returns.
        assert_eq!(
            HANDLER_RUNS.load(Ordering::Acquire),
            runs + 1,
            "no handler ran"
        );
        assert_eq!(errno, SENTINEL, "the handler did not restore errno");
        assert_eq!(HANDLER_CLEAR.load(Ordering::Relaxed), DONE, "clear_cache");
        let flush_mt = HANDLER_FLUSH_MT.load(Ordering::Relaxed);
        assert!(
            flush_mt == DONE || (flush_mt == UNSUPPORTED && super::common::expect_no_membarrier()),
            "pipeline_flush_mt in the handler: outcome {flush_mt}"
        );
        // Unsupported: RISC-V Linux before 6.10 and qemu-user refuse its prctl.
        let local = HANDLER_FLUSH_LOCAL.load(Ordering::Relaxed);
        assert!(
            local == DONE || local == UNSUPPORTED,
            "pipeline_flush_local in the handler: outcome {local}"
        );
    }

    /// A signal disposition, restored on drop.
    pub struct SignalHandler {
        signal: libc::c_int,
        previous: libc::sigaction,
    }

    impl SignalHandler {
        pub fn install(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) -> Self {
            // SAFETY: all zeroes is a valid sigaction: default flags, an empty mask.
            let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
            action.sa_sigaction = handler as libc::sighandler_t;
            // SAFETY: as above.
            let mut previous: libc::sigaction = unsafe { core::mem::zeroed() };
            // SAFETY: both point to valid sigaction values; the handler is async-signal-safe.
            let r = unsafe { libc::sigaction(signal, &action, &mut previous) };
            assert_eq!(r, 0, "sigaction: {}", std::io::Error::last_os_error());
            SignalHandler { signal, previous }
        }
    }

    impl Drop for SignalHandler {
        fn drop(&mut self) {
            // SAFETY: puts back the disposition `install` replaced.
            unsafe { libc::sigaction(self.signal, &self.previous, core::ptr::null_mut()) };
        }
    }
}

/// A signal handler patches code (as a JIT may from a safepoint or profiling signal): it writes
/// the new bytes, calls `clear_cache`, `pipeline_flush_mt` and `pipeline_flush_local`, and the
/// code runs after it returns, on its own thread and then on another thread in lock step. No
/// other test uses SIGUSR1.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn signal_handler_patches_code() {
    const ROUNDS: u32 = 12;
    let mut map = CodeMap::new(2 * page_size()).unwrap();
    map.make_rwx().unwrap();
    let map = Arc::new(map);
    let _handler = sigusr1::SignalHandler::install(libc::SIGUSR1, sigusr1::patch_on_sigusr1);
    let dst = |offset: usize| map.ptr_at(offset).cast_mut().cast::<u8>();

    for g in 1..=ROUNDS {
        let (offset, code) = generation_site(g);
        sigusr1::patch_by_signal(dst(offset), &code);
        // SAFETY: the handler wrote a complete function there and made it coherent; RWX.
        let v = unsafe { map.func(offset) }();
        assert_eq!(v, u32::from(generation_value(g)), "generation {g}");
    }

    let reader_map = map.clone();
    let last = ROUNDS + 30;
    // Computed here: an allocation in the reader could make a system call, which would
    // synchronise it by itself.
    let offsets: Vec<usize> = (0..=last).map(|g| generation_site(g).0).collect();
    lockstep_with_reader(
        ROUNDS + 1..=last,
        // SAFETY: generation g's function was written and made coherent, and every pipeline
        // flushed, before g was released; it is rewritten only after this thread acknowledged
        // g; the mapping is RWX and alive (Arc).
        move |g| unsafe { reader_map.func(offsets[g as usize]) }(),
        |g| {
            let (offset, code) = generation_site(g);
            sigusr1::patch_by_signal(dst(offset), &code);
        },
    );
}
