//! A measurement probe: calls one function of the crate a given number of times and nothing
//! else that depends on that number.
//!
//! `.ci/icount.sh` runs it twice under QEMU with an instruction-counting plugin, with different
//! repetition counts, and divides the difference by the difference in calls: start-up costs
//! cancel and what remains is the exact cost of one call.
//!
//! ```text
//! probe <op> <len> <offset> <reps> [ranges]
//!   clear_cache  one range of <len> bytes at <offset> in a page-aligned buffer
//!   many         <ranges> (default 4) such ranges, each in its own pages, in one call
//!   flush_mt     pipeline_flush_mt() (len and offset are ignored)
//! ```
//!
//! Every operation runs once before the loop, so one-time work (reading `CTR_EL0`, registering
//! with `membarrier`) happens in every run and cancels out.

use std::ffi::c_void;
use std::hint::black_box;
use std::process::ExitCode;

const PAGE: usize = 4096;

fn arg(args: &[String], i: usize, default: Option<usize>) -> Result<usize, String> {
    match args.get(i) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("argument {i}: not a number: {s}")),
        None => default.ok_or_else(|| format!("argument {i} is missing")),
    }
}

/// One call to warm up, then `reps` calls; generic so that the loop holds nothing but the call.
/// The calls' arguments pass through `black_box` so that, as in a JIT, nothing about them is
/// known in advance or hoisted out of the loop.
/// Starts the window the plugin counts ([`icache_benches::marker`]); `run` ends it after
/// `cache_info`, so that every `CTR_EL0` read of the process is inside.
fn repeat(reps: usize, f: impl Fn() -> Result<(), icache::Error>) -> Result<(), icache::Error> {
    icache_benches::marker();
    f()?;
    for _ in 0..reps {
        f()?;
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let op = args
        .get(1)
        .ok_or("usage: probe <op> <len> <offset> <reps> [ranges]")?;
    let len = arg(args, 2, None)?;
    let offset = arg(args, 3, None)?;
    let reps = arg(args, 4, None)?;
    let n = arg(args, 5, Some(4))?;

    // Each range gets its own pages, so no two ranges share a cache line.
    let slot = (offset + len).div_ceil(PAGE).max(1) * PAGE;
    let buf = vec![0u8; slot * n.max(1) + PAGE];
    let base = buf.as_ptr().wrapping_add(buf.as_ptr().align_offset(PAGE));
    let ranges: Vec<(*const c_void, usize)> = (0..n)
        .map(|i| (base.wrapping_add(i * slot + offset).cast(), len))
        .collect();
    let start: *const c_void = base.wrapping_add(offset).cast();

    match op.as_str() {
        // SAFETY: the range lies inside `buf`, which is alive and readable.
        "clear_cache" => repeat(reps, || unsafe {
            let (p, l) = black_box((start, len));
            icache::clear_cache(p, l)
        }),
        // SAFETY: as above, for every range.
        "many" => repeat(reps, || unsafe {
            icache::clear_cache_many(black_box(&ranges))
        }),
        "flush_mt" => repeat(reps, icache::pipeline_flush_mt),
        _ => return Err(format!("unknown op {op}")),
    }
    .map_err(|e| format!("{op}: {e}"))?;
    println!("{:?}", icache::cache_info());
    icache_benches::marker();
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("probe: {e}");
            ExitCode::FAILURE
        }
    }
}
