//! Scenario program for the coherence checker (a QEMU TCG plugin): writes a ~1 KiB function into
//! an RWX mapping, makes it coherent with one implementation, runs it, patches it in place and
//! runs it again, so that the checker can see which implementation leaves stale code.
//!
//! Usage: `coherence-peers <impl> <scenario>`
//!
//! | impl | makes a range coherent | cross-thread flush |
//! |---|---|---|
//! | `icache` | `icache::clear_cache` | `icache::pipeline_flush_mt` |
//! | `wasmtime34` | `wasmtime-jit-icache-coherence` 34.0.2 `clear_cache` | its `pipeline_flush_mt` |
//! | `wasmtime48`, `wasmtime50` | `wasmtime-internal-jit-icache-coherence` 48.0.8, 50.0.1 | the same |
//! | `clear-cache` | `clear_cache::clear_cache(start, end)` (`false` is an error) | none |
//! | `dynasmrt` | `cache_control::synchronize_icache` then `prepare_for_execution` | none |
//! | `libgcc` | `__clear_cache(start, end)` (GNU/Linux) | none |
//! | `none` | nothing | none |
//!
//! `one` calls the first column after each write (a single-threaded JIT needs no more, and the
//! system call of a cross-thread flush would synchronise the writer by itself); `two` both. Errors from an implementation are printed
//! to stderr and the scenario goes on.
//!
//! * `one`: one thread; generations 0 to 3, each written, made coherent, called and checked.
//! * `two`: a reader thread runs generation 0, then every generation the writer (main thread)
//!   publishes with a release store; its loop makes no system call, so only the implementation's
//!   calls on the writer can make the new code visible to it.
//!
//! Prints `ok <impl> <scenario>` and exits 0 when every result was right; exits 1 when a wrong
//! result was seen, 2 (`unsupported`) when the implementation or architecture has no code path
//! here, 3 on a usage or set-up error. No `mprotect` runs between a write and a call, so no system
//! call can hide a missing flush.

use std::ffi::c_void;
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime_jit_icache_coherence as wt34;

/// Byte offset of the function in the mapping: 4-aligned, not aligned to any cache line.
const OFFSET: usize = 12;
/// Number of `add` instructions: with the first and last instruction, 256 words (1 KiB).
const ADDS: usize = 254;
const WORDS: usize = ADDS + 2;
const LEN: usize = WORDS * 4;
/// The last generation; both scenarios run 0 (the first write) and then 1..=LAST (patches).
const LAST: u64 = 3;

/// Immediate of the `i`th add in generation `g`: 1..=64. Every add changes from one generation
/// to the next and only grows, so a single stale line makes the sum too small.
fn imm(g: u64, i: usize) -> u32 {
    (g as u32) * 16 + (i % 16) as u32 + 1
}

fn expected(g: u64) -> u64 {
    (0..ADDS).map(|i| u64::from(imm(g, i))).sum()
}

/// The function for generation `g` as instruction words: `x = 0; x += imm(g, i)...; return x`.
fn encode(g: u64) -> [u32; WORDS] {
    let mut w = [0; WORDS];
    for (i, word) in w[1..=ADDS].iter_mut().enumerate() {
        let k = imm(g, i);
        *word = if cfg!(target_arch = "aarch64") {
            0x9100_0000 | k << 10 // ADD X0, X0, #k (64-bit, imm12 at bit 10, Rn = Rd = 0)
        } else if cfg!(target_arch = "riscv64") {
            k << 20 | 10 << 15 | 10 << 7 | 0x13 // ADDI a0, a0, k (a0 = x10, OP-IMM = 0x13)
        } else {
            0x00C0_8348 | k << 24 // bytes 48 83 C0 k: ADD RAX, imm8
        };
    }
    (w[0], w[WORDS - 1]) = if cfg!(target_arch = "aarch64") {
        (0xD280_0000, 0xD65F_03C0) // MOVZ X0, #0; RET
    } else if cfg!(target_arch = "riscv64") {
        (0x0000_0513, 0x0000_8067) // ADDI a0, x0, 0; JALR x0, 0(x1)
    } else {
        (0x9090_C031, 0x9090_90C3) // XOR EAX, EAX; NOP; NOP / RET; NOP; NOP; NOP
    };
    w
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[derive(Clone, Copy)]
enum Impl {
    Icache,
    Wasmtime34,
    Wasmtime48,
    Wasmtime50,
    ClearCache,
    Dynasmrt,
    Libgcc,
    None,
}

impl Impl {
    fn parse(name: &str) -> Option<Impl> {
        Some(match name {
            "icache" => Impl::Icache,
            "wasmtime34" => Impl::Wasmtime34,
            "wasmtime48" => Impl::Wasmtime48,
            "wasmtime50" => Impl::Wasmtime50,
            "clear-cache" => Impl::ClearCache,
            "dynasmrt" => Impl::Dynasmrt,
            "libgcc" => Impl::Libgcc,
            "none" => Impl::None,
            _ => return None,
        })
    }

    /// Whether the implementation has a code path for this target.
    fn supported(self) -> bool {
        match self {
            Impl::ClearCache => cfg!(any(
                target_arch = "x86",
                target_arch = "x86_64",
                target_arch = "aarch64",
                target_arch = "riscv64",
                target_arch = "arm",
                target_arch = "loongarch64"
            )),
            Impl::Dynasmrt => cfg!(any(
                target_arch = "x86",
                target_arch = "x86_64",
                target_arch = "aarch64",
                target_arch = "riscv64"
            )),
            Impl::Libgcc => cfg!(all(target_os = "linux", target_env = "gnu")),
            _ => true,
        }
    }

    /// The implementation's "make this range coherent" call.
    ///
    /// # Safety
    /// The range is mapped and readable, and nothing writes it during the call.
    unsafe fn clear(self, ptr: *const u8, len: usize) -> Result<(), String> {
        match self {
            // SAFETY: the caller's guarantee, forwarded.
            Impl::Icache => unsafe { icache::clear_cache(ptr.cast(), len) }.map_err(text),
            // SAFETY: the caller's guarantee, forwarded.
            Impl::Wasmtime34 => unsafe { wt34::clear_cache(ptr.cast(), len) }.map_err(text),
            // SAFETY: the caller's guarantee, forwarded.
            Impl::Wasmtime48 => unsafe { wt48::clear_cache(ptr.cast(), len) }.map_err(text),
            // SAFETY: the caller's guarantee, forwarded.
            Impl::Wasmtime50 => unsafe { wt50::clear_cache(ptr.cast(), len) }.map_err(text),
            #[cfg(any(
                target_arch = "x86",
                target_arch = "x86_64",
                target_arch = "aarch64",
                target_arch = "riscv64",
                target_arch = "arm",
                target_arch = "loongarch64"
            ))]
            Impl::ClearCache => {
                // SAFETY: the caller's guarantee; the end is one past the range.
                match unsafe { clear_cache::clear_cache(ptr, ptr.wrapping_add(len)) } {
                    true => Ok(()),
                    false => Err("returned false".into()),
                }
            }
            Impl::Dynasmrt => {
                // SAFETY: the caller's guarantee: live, readable, not written during the call.
                let code = unsafe { std::slice::from_raw_parts(ptr, len) };
                dynasmrt::cache_control::synchronize_icache(code);
                dynasmrt::cache_control::prepare_for_execution(code);
                Ok(())
            }
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            Impl::Libgcc => {
                let (start, end) = (
                    ptr.cast_mut().cast(),
                    ptr.wrapping_add(len).cast_mut().cast(),
                );
                // SAFETY: the caller's guarantee; libgcc only runs cache maintenance (or a
                // system call) on the range.
                unsafe { __clear_cache(start, end) };
                Ok(())
            }
            Impl::None => Ok(()),
            #[allow(unreachable_patterns)] // only where a cfg above removed an arm
            _ => unreachable!("checked by Impl::supported"),
        }
    }

    /// The implementation's cross-thread flush, where it has one.
    fn flush(self) -> Result<(), String> {
        match self {
            Impl::Icache => icache::pipeline_flush_mt().map_err(text),
            Impl::Wasmtime34 => wt34::pipeline_flush_mt().map_err(text),
            Impl::Wasmtime48 => wt48::pipeline_flush_mt().map_err(text),
            Impl::Wasmtime50 => wt50::pipeline_flush_mt().map_err(text),
            _ => Ok(()),
        }
    }

    /// `clear` on the range, then `flush` when other threads will run the code; errors go to
    /// stderr and do not stop the scenario.
    ///
    /// # Safety
    /// As for [`Impl::clear`].
    unsafe fn publish(self, ptr: *const u8, len: usize, other_threads: bool) {
        // SAFETY: forwarded from the caller.
        let clear = unsafe { self.clear(ptr, len) };
        let flush = if other_threads { self.flush() } else { Ok(()) };
        for (what, r) in [("clear_cache", clear), ("pipeline_flush_mt", flush)] {
            if let Err(e) = r {
                eprintln!("coherence-peers: {what}: {e}");
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// libgcc's runtime behind `__builtin___clear_cache`, exported by `libgcc_s` on GNU/Linux.
    fn __clear_cache(start: *mut c_void, end: *mut c_void);
}

/// The RWX mapping and the function in it.
struct Code {
    base: *mut u8,
}

impl Code {
    fn new() -> Code {
        let prot = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            eprintln!(
                "coherence-peers: mmap RWX: {}",
                std::io::Error::last_os_error()
            );
            exit(3);
        }
        Code { base: p.cast() }
    }

    fn entry(&self) -> *const u8 {
        self.base.wrapping_add(OFFSET)
    }

    /// Writes generation `g` and makes it coherent with `imp` (for other threads too when
    /// `other_threads`).
    ///
    /// # Safety
    /// No thread is running the function.
    unsafe fn write(&self, g: u64, imp: Impl, other_threads: bool) {
        let code = self.entry().cast_mut().cast::<u32>();
        for (i, w) in encode(g).into_iter().enumerate() {
            // SAFETY: OFFSET + LEN fits in the 4096-byte writable mapping, 4-aligned.
            unsafe { code.add(i).write_volatile(w) };
        }
        // SAFETY: the range was just written and nothing else writes it.
        unsafe { imp.publish(self.entry(), LEN, other_threads) };
    }

    /// # Safety
    /// The function is complete and was made coherent for this thread.
    unsafe fn call(entry: usize) -> u64 {
        // SAFETY: `entry` holds a complete function for this architecture, C ABI, no arguments.
        let f: extern "C" fn() -> u64 = unsafe { std::mem::transmute(entry) };
        f()
    }
}

fn check(g: u64, got: u64) -> bool {
    let ok = got == expected(g);
    if !ok {
        eprintln!(
            "coherence-peers: generation {g}: got {got}, expected {}",
            expected(g)
        );
    }
    ok
}

fn one(imp: Impl) -> bool {
    let code = Code::new();
    let mut ok = true;
    for g in 0..=LAST {
        // SAFETY: single thread: nothing runs the function while it is written; then it is
        // complete and coherent (as far as `imp` makes it).
        ok &= check(g, unsafe {
            code.write(g, imp, false);
            Code::call(code.entry() as usize)
        });
    }
    ok
}

fn two(imp: Impl) -> bool {
    static GEN: AtomicU64 = AtomicU64::new(0);
    // How many generations the reader has run: the writer waits for `g + 1` after publishing `g`.
    static DONE: AtomicU64 = AtomicU64::new(0);
    let wait = |n| {
        while DONE.load(Ordering::Acquire) != n {
            std::thread::yield_now();
        }
    };
    let code = Code::new();
    // SAFETY: the reader does not exist yet.
    unsafe { code.write(0, imp, true) };
    let entry = code.entry() as usize;
    let reader = std::thread::spawn(move || {
        let mut got = [0u64; LAST as usize + 1];
        let mut next = 0;
        // Only atomics and the call in this loop: no system call, and no `spin_loop()` hint,
        // which is an `isb` on AArch64 and would itself discard stale instructions.
        while next <= LAST {
            if GEN.load(Ordering::Acquire) == next {
                // SAFETY: generation `next` is complete and published after its flush (the
                // Acquire load pairs with the writer's Release store).
                got[next as usize] = unsafe { Code::call(entry) };
                next += 1;
                DONE.store(next, Ordering::Release);
            }
        }
        got
    });
    wait(1); // the reader has run generation 0: it may hold the old code
    for g in 1..=LAST {
        // SAFETY: the reader finished generation g - 1 (DONE) and waits for GEN to change.
        unsafe { code.write(g, imp, true) };
        GEN.store(g, Ordering::Release);
        wait(g + 1);
    }
    let got = reader.join().expect("reader thread panicked");
    (0..=LAST).fold(true, |ok, g| check(g, got[g as usize]) & ok)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: coherence-peers \
        <icache|wasmtime34|wasmtime48|wasmtime50|clear-cache|dynasmrt|libgcc|none> <one|two>";
    let (Some(imp), Some(scenario)) = (
        args.get(1).and_then(|a| Impl::parse(a)),
        args.get(2).filter(|s| *s == "one" || *s == "two"),
    ) else {
        eprintln!("{usage}");
        exit(3);
    };
    let arch_ok = cfg!(any(
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "x86_64"
    ));
    if !imp.supported() || !arch_ok {
        println!("unsupported");
        exit(2);
    }
    let ok = if scenario == "one" {
        one(imp)
    } else {
        two(imp)
    };
    if !ok {
        exit(1);
    }
    println!("ok {} {scenario}", args[1]);
}
