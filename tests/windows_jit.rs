//! Windows: a minimal JIT through `VirtualAlloc`/`VirtualProtect`, run under Wine by
//! `.ci/platforms.sh`. (`tests/jit.rs` and `tests/common` map memory with `mmap`, so they build on
//! Unix only; this file covers the same publish sequence on Windows.)
//!
//! Each test writes a function returning a value, publishes it with the crate, calls it, then
//! rewrites it in place with another value and checks the new one is what runs: a `clear_cache`
//! that flushed nothing, or a wrong protection dance, fails here.
#![cfg(windows)]

use core::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualProtect, MEM_COMMIT, MEM_RELEASE, MEM_RESERVE,
    PAGE_EXECUTE_READ, PAGE_PROTECTION_FLAGS, PAGE_READWRITE,
};

/// `mov eax, imm32; ret` (Intel SDM vol. 2: B8+rd id, C3).
#[cfg(target_arch = "x86_64")]
fn ret_imm(value: u32) -> Vec<u8> {
    let mut code = vec![0xb8];
    code.extend_from_slice(&value.to_le_bytes());
    code.push(0xc3);
    code
}

/// `movz w0, #value; ret` (Arm ARM, A64).
#[cfg(target_arch = "aarch64")]
fn ret_imm(value: u32) -> Vec<u8> {
    let value = value & 0xffff;
    [0x5280_0000 | (value << 5), 0xd65f_03c0_u32]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

/// One committed region, `VirtualFree`d on drop.
struct Region {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the region is plain memory owned by the process; the tests synchronise access.
unsafe impl Send for Region {}
// SAFETY: as above; shared access only calls code and reads through atomics.
unsafe impl Sync for Region {}

impl Region {
    fn new(len: usize) -> Region {
        // SAFETY: a fresh anonymous reservation; no existing memory is touched.
        let ptr = unsafe {
            VirtualAlloc(
                core::ptr::null(),
                len,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_READWRITE,
            )
        };
        assert!(
            !ptr.is_null(),
            "VirtualAlloc: {}",
            std::io::Error::last_os_error()
        );
        Region {
            ptr: ptr.cast(),
            len,
        }
    }

    fn protect(&self, prot: PAGE_PROTECTION_FLAGS) {
        let mut old: PAGE_PROTECTION_FLAGS = 0;
        // SAFETY: the whole region belongs to this object.
        let ok = unsafe { VirtualProtect(self.ptr.cast(), self.len, prot, &mut old) };
        assert!(
            ok != 0,
            "VirtualProtect: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Writes `code` at `offset` (the region must be writable).
    /// Copies `code` to `offset`: `&mut self` excludes every other reader and writer.
    fn write(&mut self, offset: usize, code: &[u8]) {
        // SAFETY: `&mut self` excludes other access; writability is the caller's protection
        // state, which `protect` sets (a write to a read-only page faults, it does not race).
        unsafe { self.write_unpublished(offset, code) };
    }

    /// Copies `code` to `offset` through `&self`, for a region shared with another thread.
    ///
    /// # Safety
    /// The region is writable there, and no other thread reads, runs or writes these bytes
    /// until the caller publishes them.
    unsafe fn write_unpublished(&self, offset: usize, code: &[u8]) {
        assert!(offset
            .checked_add(code.len())
            .is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked above); exclusivity and writability from the caller.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), self.ptr.add(offset), code.len()) };
    }

    /// Calls the function at `offset`.
    ///
    /// # Safety
    /// A complete, published function must be there and the region executable.
    unsafe fn call(&self, offset: usize) -> u32 {
        // SAFETY: the caller guarantees a published function at this address.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(self.ptr.add(offset)) };
        f()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: releases the whole reservation made in `new`; nothing uses it any more.
        unsafe { VirtualFree(self.ptr.cast(), 0, MEM_RELEASE) };
    }
}

#[test]
fn rewrite_in_place_runs_the_new_code() {
    let mut region = Region::new(1 << 16);
    // Offsets that straddle 64-byte lines and a page boundary.
    for (round, offset) in [0usize, 60, 4093, 8190].into_iter().enumerate() {
        for value in [0x1000 + round as u32, 0x2000 + round as u32] {
            region.protect(PAGE_READWRITE);
            let code = ret_imm(value);
            region.write(offset, &code);
            // SAFETY: the bytes were just written inside the region.
            unsafe { icache::clear_cache(region.ptr.add(offset) as *const c_void, code.len()) }
                .expect("clear_cache");
            region.protect(PAGE_EXECUTE_READ);
            // SAFETY: a complete function was published at `offset`.
            assert_eq!(unsafe { region.call(offset) }, value, "offset {offset}");
        }
    }
}

#[test]
fn batch_publishes_every_function() {
    let mut region = Region::new(1 << 16);
    let offsets = [0usize, 100, 3000, 4090, 20000];
    for base in [7u32, 70] {
        region.protect(PAGE_READWRITE);
        let codes: Vec<Vec<u8>> = offsets
            .iter()
            .zip(base..)
            .map(|(_, v)| ret_imm(v))
            .collect();
        for (&offset, code) in offsets.iter().zip(&codes) {
            region.write(offset, code);
        }
        let ranges: Vec<(*const c_void, usize)> = offsets
            .iter()
            .zip(&codes)
            // SAFETY: in bounds of the region.
            .map(|(&o, c)| (unsafe { region.ptr.add(o) } as *const c_void, c.len()))
            .collect();
        // SAFETY: every range lies inside the committed region.
        unsafe { icache::clear_cache_many(&ranges) }.expect("clear_cache_many");
        region.protect(PAGE_EXECUTE_READ);
        for (&offset, value) in offsets.iter().zip(base..) {
            // SAFETY: each function was published above.
            assert_eq!(unsafe { region.call(offset) }, value);
        }
    }
}

#[test]
fn pipeline_flush_is_flush_process_write_buffers() {
    assert_eq!(
        icache::prepare_pipeline_flush(),
        Ok(icache::PipelineFlush::FlushProcessWriteBuffers)
    );
    icache::pipeline_flush_mt().expect("pipeline_flush_mt");
    assert_eq!(
        icache::cache_info().maintenance,
        icache::Maintenance::SystemCall
    );
}

/// Another thread keeps calling the function while this one republishes it with new values;
/// after `pipeline_flush_mt` and the publication of the new generation, the other thread must see
/// the new value on its next call. A Dekker-style handshake (`in_call` against `generation`, both
/// sequentially consistent) keeps the runner out of the code while it is rewritten.
#[test]
fn other_thread_runs_the_republished_code() {
    let region = Arc::new(Region::new(1 << 12));
    let generation = Arc::new(AtomicU32::new(0));
    let in_call = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mismatches = Arc::new(AtomicU32::new(0));

    // SAFETY: no other thread exists yet; the region is read-write.
    unsafe { region.write_unpublished(0, &ret_imm(0)) };
    // SAFETY: the bytes were just written inside the region.
    unsafe { icache::clear_cache(region.ptr as *const c_void, 16) }.unwrap();
    region.protect(PAGE_EXECUTE_READ);

    let runner = {
        let (region, generation, in_call, stop, mismatches) = (
            region.clone(),
            generation.clone(),
            in_call.clone(),
            stop.clone(),
            mismatches.clone(),
        );
        std::thread::spawn(move || {
            let mut calls = 0u64;
            while !stop.load(Ordering::SeqCst) {
                in_call.store(true, Ordering::SeqCst);
                let g = generation.load(Ordering::SeqCst);
                if g % 2 == 0 {
                    // SAFETY: an even generation is a published function, and the writer waits
                    // for `in_call` to drop before it touches the code again.
                    let got = unsafe { region.call(0) };
                    if got != g {
                        mismatches.fetch_add(1, Ordering::Relaxed);
                    }
                    calls += 1;
                }
                in_call.store(false, Ordering::SeqCst);
                std::hint::spin_loop();
            }
            calls
        })
    };

    for g in (2u32..400).step_by(2) {
        // Odd: the runner stops calling; wait until it is out of the code.
        generation.store(g - 1, Ordering::SeqCst);
        while in_call.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        region.protect(PAGE_READWRITE);
        // SAFETY: the runner is out of the code (`in_call` is false) and will not enter it
        // before the next even generation is published; the region is read-write.
        unsafe { region.write_unpublished(0, &ret_imm(g)) };
        // SAFETY: the bytes were just written inside the region.
        unsafe { icache::clear_cache(region.ptr as *const c_void, 16) }.unwrap();
        region.protect(PAGE_EXECUTE_READ);
        icache::pipeline_flush_mt().unwrap();
        generation.store(g, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    stop.store(true, Ordering::SeqCst);
    let calls = runner.join().unwrap();
    assert!(calls > 0, "the runner never called the code");
    assert_eq!(mismatches.load(Ordering::Relaxed), 0);
}
