//! Host timings of `icache` and of its peers, side by side (BENCHMARKS.md; `.ci/bench.sh`
//! regenerates it). Run alone: `cargo bench -p icache-benches --features peers
//! --ignore-rust-version --bench clear_cache -- --noplot`.
//!
//! Groups:
//! * `clear_cache/<impl>/<bytes>`: one range, 64 B to 1 MiB;
//! * `batch_1000x256/<impl>`: 1000 functions of 256 B, back to back: `icache_many` is one
//!   `clear_cache_slices` call, the others 1000 single calls;
//! * `pipeline_flush_mt/<impl>`: the steady-state cross-thread flush, against one raw
//!   `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)` (the floor);
//! * `first_call/<impl>`: the first cross-thread flush of a process, which also registers with
//!   `membarrier`. Registration is once per process, so each sample is a fresh child process
//!   (this binary re-run with `ICACHE_BENCH_CHILD` set) that times the call with `Instant` and
//!   prints the nanoseconds; the spawn itself is not counted.

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use std::hint::black_box;
use std::time::Duration;

use icache_benches::peers;

const SIZES: [usize; 5] = [64, 256, 4096, 65536, 1 << 20];
const CHILD: &str = "ICACHE_BENCH_CHILD";

/// Calls `$m!(name, function, extra arguments...)` for every range-clearing implementation built
/// for this target. A macro rather than a table of function pointers: each implementation is
/// inlined into its own timed closure, so a call that compiles to nothing costs nothing.
macro_rules! for_each_impl {
    ($m:ident, $($arg:expr),*) => {
        $m!("icache", peers::icache, $($arg),*);
        $m!("wasmtime34", peers::wasmtime34, $($arg),*);
        $m!("wasmtime48", peers::wasmtime48, $($arg),*);
        $m!("wasmtime50", peers::wasmtime50, $($arg),*);
        #[cfg(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64", target_arch = "arm"))]
        $m!("clear-cache", peers::clear_cache_crate, $($arg),*);
        $m!("dynasmrt", peers::dynasmrt, $($arg),*);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        $m!("libgcc", peers::libgcc, $($arg),*);
    };
}

fn clear_cache_sizes(c: &mut Criterion) {
    let mut group = c.benchmark_group("clear_cache");
    let buf = vec![0u8; 1 << 20];
    macro_rules! one {
        ($name:literal, $f:path, $size:expr) => {
            group.bench_function(BenchmarkId::new($name, $size), |b| {
                // SAFETY: the range lies in `buf`, which is alive and readable.
                b.iter(|| unsafe { $f(black_box(buf.as_ptr()), black_box($size)) })
            })
        };
    }
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for_each_impl!(one, size);
    }
    group.finish();
}

fn many_ranges(c: &mut Criterion) {
    let buf = vec![0u8; 1000 * 256];
    let slices: Vec<&[u8]> = buf.chunks(256).collect();
    let mut group = c.benchmark_group("batch_1000x256");
    group.bench_function("icache_many", |b| {
        b.iter(|| icache::clear_cache_slices(black_box(&slices)))
    });
    macro_rules! singles {
        ($name:literal, $f:path, $slices:expr) => {
            // `icache` here is 1000 single calls, against its own batch call above.
            let id = if $name == "icache" {
                "icache_single"
            } else {
                $name
            };
            group.bench_function(id, |b| {
                b.iter(|| {
                    for s in $slices {
                        // SAFETY: a slice is mapped and readable.
                        unsafe { $f(black_box(s.as_ptr()), s.len())? };
                    }
                    Ok::<(), &str>(())
                })
            })
        };
    }
    for_each_impl!(singles, &slices);
    group.finish();
}

fn pipeline_flush(c: &mut Criterion) {
    if let Err(e) = icache::prepare_pipeline_flush() {
        eprintln!("pipeline_flush_mt is not available here ({e}); skipped");
        return;
    }
    let mut group = c.benchmark_group("pipeline_flush_mt");
    group.bench_function("icache", |b| b.iter(peers::icache_flush));
    group.bench_function("wasmtime34", |b| b.iter(peers::wasmtime34_flush));
    group.bench_function("wasmtime48", |b| b.iter(peers::wasmtime48_flush));
    group.bench_function("wasmtime50", |b| b.iter(peers::wasmtime50_flush));
    // Registered above, by `prepare_pipeline_flush`.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    group.bench_function("raw_membarrier", |b| {
        b.iter(|| peers::raw_membarrier(black_box(32)))
    });
    group.finish();
}

/// The first-call modes a child process can run.
const FIRST_CALLS: [&str; 6] = [
    "icache_prepare",
    "icache_flush",
    "wasmtime34",
    "wasmtime48",
    "wasmtime50",
    "raw_register_then_flush",
];

/// In a child: time the mode's first call, print the nanoseconds.
fn child(mode: &str) -> Result<(), String> {
    let start = std::time::Instant::now();
    match mode {
        "icache_prepare" => icache::prepare_pipeline_flush()
            .map(drop)
            .map_err(|e| e.to_string())?,
        "icache_flush" => peers::icache_flush()?,
        "wasmtime34" => peers::wasmtime34_flush()?,
        "wasmtime48" => peers::wasmtime48_flush()?,
        "wasmtime50" => peers::wasmtime50_flush()?,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "raw_register_then_flush" => {
            peers::raw_membarrier(64)?;
            peers::raw_membarrier(32)?;
        }
        _ => return Err(format!("unknown mode {mode}")),
    }
    let ns = start.elapsed().as_nanos();
    println!("{ns}");
    Ok(())
}

/// Runs this binary as a fresh process in `mode` and returns the time the child measured.
fn run_child(mode: &str) -> Duration {
    let out = std::env::current_exe()
        .and_then(|exe| std::process::Command::new(exe).env(CHILD, mode).output())
        .unwrap_or_else(|e| panic!("cannot run the child process: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<u64>() {
        Ok(ns) if out.status.success() => Duration::from_nanos(ns),
        _ => panic!(
            "child {mode} failed: {} {}",
            text,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn first_call(c: &mut Criterion) {
    if icache::prepare_pipeline_flush().is_err() {
        return;
    }
    let mut group = c.benchmark_group("first_call");
    // Each sample spawns processes (about a millisecond each, not counted): keep the totals small.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(5))
        .measurement_time(Duration::from_millis(20));
    for mode in FIRST_CALLS {
        group.bench_function(mode, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| run_child(mode)).sum())
        });
    }
    group.finish();
}

/// Steady-state `pipeline_flush_mt` against the raw system call, interleaved: ROUNDS rounds of
/// CALLS calls of each, alternating, so that both see the same machine load (this machine is
/// shared; sequential criterion runs of the two drifted by ±70% here). Per-call nanoseconds of
/// every round go to the JSON file named by `ICACHE_BENCH_PAIRED` (read by `.ci/bench.py`) and
/// the medians to stdout.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn paired_flush() {
    const ROUNDS: usize = 41;
    const CALLS: u32 = 2000;
    if icache::prepare_pipeline_flush().is_err() {
        return;
    }
    let time = |f: &dyn Fn() -> peers::Res| {
        let start = std::time::Instant::now();
        for _ in 0..CALLS {
            black_box(f()).expect("flush failed");
        }
        start.elapsed().as_nanos() as f64 / f64::from(CALLS)
    };
    let (mut mine, mut raw) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate which goes first, so neither always follows the other.
        if round % 2 == 0 {
            mine.push(time(&peers::icache_flush));
            raw.push(time(&|| peers::raw_membarrier(32)));
        } else {
            raw.push(time(&|| peers::raw_membarrier(32)));
            mine.push(time(&peers::icache_flush));
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "paired pipeline_flush_mt: icache {:.1} ns, raw membarrier {:.1} ns (medians of {ROUNDS} \
         interleaved rounds of {CALLS} calls)",
        median(&mine),
        median(&raw)
    );
    if let Ok(path) = std::env::var("ICACHE_BENCH_PAIRED") {
        let list = |v: &[f64]| {
            let items: Vec<String> = v.iter().map(|x| format!("{x:.2}")).collect();
            items.join(", ")
        };
        let json = format!(
            "{{\"calls\": {CALLS}, \"icache_ns\": [{}], \"raw_ns\": [{}]}}\n",
            list(&mine),
            list(&raw)
        );
        std::fs::write(&path, json).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        if let Err(e) = child(&mode) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    clear_cache_sizes(&mut c);
    many_ranges(&mut c);
    pipeline_flush(&mut c);
    first_call(&mut c);
    c.final_summary();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    paired_flush();
}
