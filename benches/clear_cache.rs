//! Host timings of the crate's calls. Run: `cargo bench --bench clear_cache -- --noplot`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn clear_cache_sizes(c: &mut Criterion) {
    let mut group = c.benchmark_group("clear_cache");
    let buf = vec![0u8; 1 << 20];
    for size in [64usize, 256, 4096, 65536, 1 << 20] {
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| icache::clear_cache_slice(black_box(&buf[..size])))
        });
    }
    group.finish();
}

fn many_ranges(c: &mut Criterion) {
    let buf = vec![0u8; 1000 * 256];
    let slices: Vec<&[u8]> = buf.chunks(256).collect();
    let mut group = c.benchmark_group("1000 functions of 256 B");
    group.bench_function("clear_cache_slices", |b| {
        b.iter(|| icache::clear_cache_slices(black_box(&slices)))
    });
    group.bench_function("1000 x clear_cache_slice", |b| {
        b.iter(|| {
            for s in &slices {
                icache::clear_cache_slice(black_box(s))?;
            }
            Ok::<(), icache::Error>(())
        })
    });
    group.finish();
}

fn pipeline_flush(c: &mut Criterion) {
    if icache::prepare_pipeline_flush().is_err() {
        eprintln!("pipeline_flush_mt is not available here; skipped");
        return;
    }
    let mut group = c.benchmark_group("pipeline_flush_mt");
    group.bench_function("steady state", |b| b.iter(icache::pipeline_flush_mt));
    #[cfg(target_os = "linux")]
    group.bench_function("raw membarrier(SYNC_CORE)", |b| {
        // SAFETY: membarrier takes integers only.
        b.iter(|| unsafe { libc::syscall(libc::SYS_membarrier, black_box(32), 0, 0) })
    });
    group.finish();
}

criterion_group!(benches, clear_cache_sizes, many_ranges, pipeline_flush);
criterion_main!(benches);
