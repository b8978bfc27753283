//! A measurement probe for BENCHMARKS.md: calls one operation of `icache` or of a peer crate a
//! given number of times, and nothing else that depends on that number.
//!
//! `.ci/bench.sh` runs it twice under qemu-user with the instruction-counting plugin
//! (`tests/qemu-plugin/icount.c`), with two repetition counts, and divides the difference of the
//! counts by the difference of the repetitions: start-up and the one warm-up call cancel, what
//! remains is the exact cost of one call.
//!
//! ```text
//! peers_probe <impl> <op> <len> <reps>
//!   impl: icache | icache-discard | wasmtime34 | wasmtime48 | wasmtime50 | clear-cache
//!         | dynasmrt | libgcc | raw | none   (`icache-discard`: the result ignored)
//!   op:   clear   one range of <len> bytes at the start of a page-aligned buffer
//!         batch   1000 ranges of <len> bytes, back to back: one `clear_cache_many` for
//!                 icache, 1000 single calls for the peers (which have no batch call) and
//!                 for `icache-single`; `icache-slices` is one `clear_cache_slices` call
//!         flush   the cross-thread pipeline flush (`raw`: one membarrier SYNC_CORE syscall)
//!         publish one range of <len> bytes, then the cross-thread flush: what a JIT whose
//!                 other threads may run the code does; the peers that offer no such flush
//!                 (clear-cache, dynasmrt, libgcc) are followed by the `raw` system call, which
//!                 their users must add themselves
//! ```
//!
//! `none` runs the same loop with no call: its count is the loop's own cost, which
//! `.ci/bench.sh` subtracts.
//!
//! Each peer is called the way its documentation asks a JIT to make code executable on the
//! calling thread: wasmtime and icache `clear_cache`; clear-cache `clear_cache(start, end)`;
//! dynasmrt `synchronize_icache` then `prepare_for_execution`; libgcc `__clear_cache(start, end)`.

use std::ffi::c_void;
use std::hint::black_box;

use icache_benches::peers::{self, Res};

const PAGE: usize = 4096;
const BATCH: usize = 1000;

/// One range: `(start, len)`. Callers guarantee it is mapped and readable.
type ClearFn = unsafe fn(*const u8, usize) -> Res;
/// Many ranges. Callers guarantee every range is mapped and readable.
type BatchFn = unsafe fn(&[(*const c_void, usize)]) -> Res;

// Each implementation is one non-inlined function reached through a pointer, so every one pays
// the same call overhead, which the `none` implementation measures alone.

macro_rules! wrappers {
    ($( $(#[$cfg:meta])* $name:literal, $bname:literal => $one:ident, $batch:ident, $peer:path; )*) => {
        $(
            $(#[$cfg])*
            #[inline(never)]
            unsafe fn $one(ptr: *const u8, len: usize) -> Res {
                // SAFETY: the caller guarantees the range is mapped and readable.
                unsafe { $peer(ptr, len) }
            }

            /// One call per range: what a JIT does with a peer that has no batch call.
            $(#[$cfg])*
            #[inline(never)]
            unsafe fn $batch(ranges: &[(*const c_void, usize)]) -> Res {
                for &(p, l) in ranges {
                    // SAFETY: the caller guarantees every range is mapped and readable.
                    unsafe { $peer(p.cast(), l)? };
                }
                Ok(())
            }
        )*

        fn clear_fn(imp: &str) -> Result<ClearFn, String> {
            match imp {
                "none" => Ok(none_clear),
                $( $(#[$cfg])* $name => Ok($one), )*
                _ => Err(format!("clear: unknown implementation {imp}")),
            }
        }

        fn batch_fn(imp: &str) -> Result<BatchFn, String> {
            match imp {
                "none" => Ok(none_batch),
                "icache" => Ok(icache_batch),
                $( $(#[$cfg])* $bname => Ok($batch), )*
                _ => Err(format!("batch: unknown implementation {imp}")),
            }
        }
    };
}

wrappers! {
    "icache", "icache-single" => icache_one, icache_single_batch, peers::icache;
    "icache-discard", "icache-discard" => icache_discard_one, icache_discard_batch, icache_discarded;
    "wasmtime34", "wasmtime34" => wasmtime34_one, wasmtime34_batch, peers::wasmtime34;
    "wasmtime48", "wasmtime48" => wasmtime48_one, wasmtime48_batch, peers::wasmtime48;
    "wasmtime50", "wasmtime50" => wasmtime50_one, wasmtime50_batch, peers::wasmtime50;
    #[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64", target_arch = "arm"))]
    "clear-cache", "clear-cache" => clear_cache_one, clear_cache_batch, peers::clear_cache_crate;
    "dynasmrt", "dynasmrt" => dynasmrt_one, dynasmrt_batch, peers::dynasmrt;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    "libgcc", "libgcc" => libgcc_one, libgcc_batch, peers::libgcc;
}

/// `icache` with the result ignored (`let _ =`), as a caller that cannot act on an error writes
/// it: where the call has nothing to do (x86-64) nothing at all should remain.
///
/// # Safety
/// The range is mapped and readable.
#[inline(always)]
unsafe fn icache_discarded(ptr: *const u8, len: usize) -> Res {
    // SAFETY: forwarded from the caller.
    let _ = unsafe { icache::clear_cache(ptr.cast(), len) };
    Ok(())
}

#[inline(never)]
unsafe fn none_clear(_ptr: *const u8, _len: usize) -> Res {
    Ok(())
}

#[inline(never)]
unsafe fn none_batch(_ranges: &[(*const c_void, usize)]) -> Res {
    Ok(())
}

/// The batch call: one set of barriers for every range.
#[inline(never)]
unsafe fn icache_batch(ranges: &[(*const c_void, usize)]) -> Res {
    // SAFETY: the caller guarantees every range is mapped and readable.
    unsafe { icache::clear_cache_many(ranges) }.map_err(|_| "icache")
}

/// The safe batch call, for slices: no per-range validation (a slice cannot wrap).
#[inline(never)]
fn icache_slices_batch(slices: &[&[u8]]) -> Res {
    icache::clear_cache_slices(slices).map_err(|_| "icache")
}

#[inline(never)]
fn none_flush() -> Res {
    Ok(())
}

#[inline(never)]
fn icache_flush() -> Res {
    peers::icache_flush()
}

#[inline(never)]
fn wasmtime34_flush() -> Res {
    peers::wasmtime34_flush()
}

#[inline(never)]
fn wasmtime48_flush() -> Res {
    peers::wasmtime48_flush()
}

#[inline(never)]
fn wasmtime50_flush() -> Res {
    peers::wasmtime50_flush()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline(never)]
fn raw_flush() -> Res {
    peers::raw_membarrier(32)
}

fn flush_fn(imp: &str) -> Result<fn() -> Res, String> {
    Ok(match imp {
        "none" => none_flush,
        "icache" => icache_flush,
        "wasmtime34" => wasmtime34_flush,
        "wasmtime48" => wasmtime48_flush,
        "wasmtime50" => wasmtime50_flush,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "raw" => raw_flush,
        _ => return Err(format!("flush: unknown implementation {imp}")),
    })
}

/// The flush that completes a publication: the implementation's own, or for a peer that has
/// none, the raw system call its user has to make.
fn publish_flush(imp: &str) -> &str {
    match imp {
        "clear-cache" | "dynasmrt" | "libgcc" => "raw",
        _ => imp,
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

fn run(args: &[String]) -> Result<(), String> {
    let usage = "usage: peers_probe <impl> <op> <len> <reps>";
    let [_, imp, op, len, reps] = args else {
        return Err(usage.into());
    };
    let len: usize = len.parse().map_err(err("len"))?;
    let reps: usize = reps.parse().map_err(err("reps"))?;

    let n = if op == "batch" { BATCH } else { 1 };
    let buf = vec![0u8; n * len + PAGE];
    let base = buf.as_ptr().wrapping_add(buf.as_ptr().align_offset(PAGE));
    let ranges: Vec<(*const c_void, usize)> = (0..n)
        .map(|i| (base.wrapping_add(i * len).cast(), len))
        .collect();

    // One warm-up call (reads CTR_EL0, resolves PLT entries, registers membarrier), then the
    // loop: both runs of a pair do the warm-up, so it cancels. The plugin counts only between
    // the markers.
    icache_benches::marker();
    match op.as_str() {
        "clear" => {
            let f = black_box(clear_fn(imp)?);
            for _ in 0..=reps {
                // SAFETY: the range lies inside `buf`, which is alive and readable.
                unsafe { f(black_box(base), black_box(len))? };
            }
        }
        "batch" if imp == "icache-slices" => {
            let start = buf.as_ptr().align_offset(PAGE);
            let slices: Vec<&[u8]> = buf[start..start + n * len].chunks(len).collect();
            // Through a pointer, as every other batch call, so the `none` baseline applies.
            let f: fn(&[&[u8]]) -> Res = black_box(icache_slices_batch);
            for _ in 0..=reps {
                f(black_box(&slices))?;
            }
        }
        "batch" => {
            let f = black_box(batch_fn(imp)?);
            for _ in 0..=reps {
                // SAFETY: as above, for every range.
                unsafe { f(black_box(&ranges))? };
            }
        }
        "flush" | "publish" => {
            let (clear, flusher) = match op.as_str() {
                "flush" => (None, imp.as_str()),
                _ => (Some(clear_fn(imp)?), publish_flush(imp)),
            };
            let (clear, flush) = black_box((clear, flush_fn(flusher)?));
            #[cfg(any(target_os = "linux", target_os = "android"))]
            if flusher == "raw" {
                // The raw call needs the process registered, once, outside the loop.
                icache::prepare_pipeline_flush().map_err(err("prepare_pipeline_flush"))?;
            }
            for _ in 0..=reps {
                if let Some(clear) = clear {
                    // SAFETY: the range lies inside `buf`, which is alive and readable.
                    unsafe { clear(black_box(base), black_box(len))? };
                }
                flush()?;
            }
        }
        _ => return Err(format!("unknown op {op}; {usage}")),
    }
    icache_benches::marker();
    drop(buf);
    Ok(())
}

fn main() -> Result<(), String> {
    run(&std::env::args().collect::<Vec<_>>())
}
