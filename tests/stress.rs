//! Stress tests for real kernels and real cores (qemu-system guests, hardware), which must also
//! pass natively and under qemu-user.
//!
//! Under qemu-user a missing cache flush or pipeline flush cannot show (the emulator
//! retranslates written code pages), so there these tests prove the calls are legal under
//! contention and that the publish protocol is sound; on hardware with non-coherent
//! instruction caches they also catch stale instructions.
//!
//! * `pinned_readers_see_every_publish`: reader threads pinned to distinct CPUs run generated
//!   code in a loop while a patcher publishes new code; no reader may ever run code older than
//!   the generation it saw published.
//! * First use: every test here first goes through [`first_use_race`], so the racing first
//!   calls of `clear_cache` (which on AArch64 reads and caches `CTR_EL0`),
//!   `prepare_pipeline_flush` and `pipeline_flush_mt` (which register `membarrier`) really are
//!   the first in the process. `first_use_in_fresh_processes` repeats that race in new
//!   processes by re-running this test binary.
// mmap, mprotect and the membarrier-backed flush: Unix only (Windows has tests/windows_jit.rs).
#![cfg(unix)]

mod common;

use common::native::{self, ret_imm, sled_ret_imm, PATCH_LEN};
use common::{page_size, CodeMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Once};
use std::time::{Duration, Instant};

/// Set in the children of `first_use_in_fresh_processes`.
const CHILD_ENV: &str = "ICACHE_STRESS_CHILD";

static FIRST_USE: Once = Once::new();

/// Runs the first-use race once per process, before anything else in this binary calls the
/// crate.
fn first_use_race() {
    FIRST_USE.call_once(race_first_use);
}

/// What one racing thread observed.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Seen {
    prepare: Result<icache::PipelineFlush, icache::ErrorKind>,
    flushed: bool,
    info: icache::CacheInfo,
}

fn race_first_use() {
    let threads = 8.max(2 * common::allowed_cpus().len()).min(32);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let barrier = barrier.clone();
            // Each thread publishes its own function, in its own mapping, straight after the
            // barrier: half of them call `clear_cache` first, half the pipeline flush first.
            let mut map = CodeMap::new(page_size()).unwrap();
            let value = 1000 + i as u16;
            let code = ret_imm(value);
            // Across a 64-byte line (and a 32-byte one) at a legal alignment.
            let offset = 64 - native::CODE_ALIGN.max(4);
            map.write(offset, &code);
            std::thread::spawn(move || {
                barrier.wait();
                let clear = || {
                    // SAFETY: inside the live, readable mapping.
                    unsafe { icache::clear_cache(map.ptr_at(offset), code.len()) }.unwrap()
                };
                let (prepare, flushed) = if i % 2 == 0 {
                    clear();
                    let p = icache::prepare_pipeline_flush();
                    (p, common::flush_mt_or_fail())
                } else {
                    let flushed = common::flush_mt_or_fail();
                    let p = icache::prepare_pipeline_flush();
                    clear();
                    (p, flushed)
                };
                let info = icache::cache_info();
                map.make_rx().unwrap();
                // SAFETY: a complete function, made coherent on this thread, executable now.
                let f = unsafe { map.func(offset) };
                assert_eq!(f(), u32::from(value), "thread {i} ran stale code");
                Seen {
                    prepare: prepare.map_err(|e| e.kind()),
                    flushed,
                    info,
                }
            })
        })
        .collect();
    let seen: Vec<Seen> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    // Every thread saw the same choice, the same cache description, and later calls agree.
    for s in &seen {
        assert_eq!(s, &seen[0], "racing first callers disagree");
    }
    let after = Seen {
        prepare: icache::prepare_pipeline_flush().map_err(|e| e.kind()),
        flushed: seen[0].flushed,
        info: icache::cache_info(),
    };
    assert_eq!(
        after, seen[0],
        "the remembered state changed after the race"
    );
    match &seen[0].prepare {
        Ok(_) => assert!(seen[0].flushed),
        Err(kind) => assert!(
            *kind == icache::ErrorKind::Unsupported && common::expect_no_membarrier(),
            "prepare_pipeline_flush failed with {kind:?}"
        ),
    }
    check_cache_info_against_hardware(&seen[0].info);
    eprintln!(
        "first-use race: {threads} threads agree on {:?}, {:?}",
        seen[0].prepare, seen[0].info
    );
}

/// On AArch64 the cached `CTR_EL0` must be the register itself: a torn or half-initialised
/// cache would show as different line sizes or flags.
#[cfg(target_arch = "aarch64")]
fn check_cache_info_against_hardware(info: &icache::CacheInfo) {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect, and Linux allows or emulates it at EL0.
    // `nomem` is right: an ID-register read neither reads nor orders memory.
    unsafe {
        core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags))
    };
    assert_eq!(info.icache_line, Some(4 << (ctr & 0xf)), "CTR_EL0 {ctr:#x}");
    assert_eq!(
        info.dcache_line,
        Some(4 << ((ctr >> 16) & 0xf)),
        "CTR_EL0 {ctr:#x}"
    );
    assert_eq!(info.idc, Some(ctr & (1 << 28) != 0), "CTR_EL0 {ctr:#x}");
    assert_eq!(info.dic, Some(ctr & (1 << 29) != 0), "CTR_EL0 {ctr:#x}");
    let l1ip = match (ctr >> 14) & 3 {
        0 => icache::L1Icache::Vpipt,
        1 => icache::L1Icache::Aivivt,
        2 => icache::L1Icache::Vipt,
        _ => icache::L1Icache::Pipt,
    };
    assert_eq!(info.l1_icache, Some(l1ip), "CTR_EL0 {ctr:#x}");
}

#[cfg(not(target_arch = "aarch64"))]
fn check_cache_info_against_hardware(info: &icache::CacheInfo) {
    if let Some(line) = info.icache_line {
        assert!(line.is_power_of_two() && line >= 4, "{info:?}");
    }
}

/// The race itself, in this process. The parent test below runs it in fresh processes.
#[test]
fn first_use_race_in_this_process() {
    first_use_race();
}

/// Re-runs this test binary filtered to `first_use_race_in_this_process`, so that the race is
/// the very first use of the crate in each new process.
///
/// Under qemu-user without binfmt_misc the binary cannot be executed directly; the child is
/// then run through `qemu-<arch>` from `PATH` (the runner `.cargo/config.toml` uses). If that
/// fails too, the in-process race (which every test here runs first) is all that is tested,
/// and this test says so on stderr.
#[test]
fn first_use_in_fresh_processes() {
    first_use_race();
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    const CHILDREN: usize = 3;
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--exact",
        "first_use_race_in_this_process",
        "--nocapture",
        "--test-threads=1",
    ];
    let run = |cmd: &mut std::process::Command| {
        cmd.args(args)
            .env(CHILD_ENV, "1")
            .stdin(std::process::Stdio::null())
            .output()
    };
    for child in 0..CHILDREN {
        // Under qemu-user the spawn itself "succeeds" (qemu emulates the vfork as a fork) and
        // the failed exec shows only as exit status 127 with no output.
        let direct = match run(&mut std::process::Command::new(&exe)) {
            Ok(o) if o.status.code() == Some(127) && o.stdout.is_empty() => {
                Err(std::io::Error::other("exit status 127: exec failed"))
            }
            other => other,
        };
        let output = match direct {
            Ok(o) => o,
            Err(direct) => match emulator() {
                Some((qemu, prefix)) => {
                    let mut cmd = std::process::Command::new(qemu);
                    if let Some(prefix) = prefix {
                        cmd.arg("-L").arg(prefix);
                    }
                    cmd.arg(&exe);
                    run(&mut cmd).unwrap_or_else(|e| {
                        panic!("cannot run {exe:?} directly ({direct}) nor under qemu ({e})")
                    })
                }
                None => {
                    eprintln!(
                        "first_use_in_fresh_processes: cannot re-execute {exe:?} ({direct}); \
                         only the in-process first-use race ran"
                    );
                    return;
                }
            },
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child {child} failed: {}\n{stdout}\n{stderr}",
            output.status
        );
        if child == 0 {
            if let Some(line) = stderr.lines().find(|l| l.starts_with("first-use race")) {
                eprintln!("child: {line}");
            }
        }
    }
}

/// The user-mode emulator for this architecture and its sysroot, when on `PATH` (only tried
/// when the binary cannot be executed directly, i.e. when this test runs under emulation).
fn emulator() -> Option<(String, Option<String>)> {
    let (qemu, sysroot) = match std::env::consts::ARCH {
        "aarch64" => ("qemu-aarch64", "/usr/aarch64-linux-gnu"),
        "riscv64" => ("qemu-riscv64", "/usr/riscv64-linux-gnu"),
        "arm" => ("qemu-arm", "/usr/arm-linux-gnueabihf"),
        "s390x" => ("qemu-s390x", "/usr/s390x-linux-gnu"),
        _ => return None,
    };
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(qemu).is_file()));
    let prefix = std::path::Path::new(sysroot)
        .is_dir()
        .then(|| sysroot.to_string());
    on_path.then(|| (qemu.to_string(), prefix))
}

/// Entries patched round-robin, each jumping to a fresh slot per generation.
const ENTRIES: usize = 4;
/// A slot: a nop sled then `ret_imm`, long enough to span several cache lines.
const SLED: usize = 192;
const SLOT: usize = SLED + 16;
/// Bounded by the shortest jump range (s390x `brc`: +-64 KiB) over `SLOT`-sized slots.
const GENERATIONS: u32 = 280;

/// The smallest value entry `e` may return once generation `g` is published: the last
/// generation `k <= g` that patched it (generation `k` patches entry `k % ENTRIES`), or 0.
fn floor(e: usize, g: u32) -> u32 {
    let n = ENTRIES as u32;
    let back = (g % n + n - e as u32) % n;
    match g.checked_sub(back) {
        Some(k) if k >= n => k,
        _ => 0,
    }
}

/// One round: fresh mapping, readers pinned to distinct CPUs, a patcher publishing up to
/// `GENERATIONS` generations. Returns (generations, reader calls, pinned).
fn publish_round(deadline: Instant) -> (u32, u64, bool) {
    let cpus = common::allowed_cpus();
    let readers = cpus.len().saturating_sub(1).max(1);
    let pin = cpus.len() > readers;

    let entry_area = (ENTRIES * PATCH_LEN).next_multiple_of(64);
    let slot = |k: u32| entry_area + SLOT * k as usize;
    let mut map = CodeMap::new(slot(GENERATIONS + ENTRIES as u32 + 1)).unwrap();
    map.make_rwx().unwrap();
    let map = Arc::new(map);
    let base = map.addr();
    let entry = |e: usize| e * PATCH_LEN;

    // Generation 0 for every entry: slots 0..ENTRIES return 0.
    for e in 0..ENTRIES {
        let s = slot(e as u32);
        // SAFETY: no thread runs this mapping yet.
        unsafe {
            map.write_unpublished(s, &sled_ret_imm(SLED, 0));
            map.patch(entry(e), &native::jump(base + entry(e), base + s));
        }
    }
    // SAFETY: inside the live, readable mapping.
    unsafe { icache::clear_cache(map.ptr_at(0), slot(ENTRIES as u32)) }.unwrap();
    common::flush_mt_or_fail();

    let generation = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(readers + 1));
    let handles: Vec<_> = (0..readers)
        .map(|r| {
            let (map, generation, done, ready) =
                (map.clone(), generation.clone(), done.clone(), ready.clone());
            let cpu = cpus.get(1 + r).copied();
            std::thread::spawn(move || {
                if pin {
                    assert!(common::pin_to(cpu.unwrap()), "sched_setaffinity failed");
                }
                // SAFETY: every entry always holds a complete jump to a complete, coherent
                // function (the patcher's protocol); the mapping stays RWX and alive (Arc).
                let funcs: Vec<_> = (0..ENTRIES)
                    .map(|e| unsafe { map.func(entry(e)) })
                    .collect();
                ready.wait();
                let mut calls = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let g = generation.load(Ordering::Acquire);
                    for (e, f) in funcs.iter().enumerate() {
                        let v = f();
                        calls += 1;
                        let min = floor(e, g);
                        if v < min || v > GENERATIONS || (v != 0 && v as usize % ENTRIES != e) {
                            return Err(format!(
                                "reader {r}: generation {g} published, entry {e} returned {v} \
                                 (at least {min} expected)"
                            ));
                        }
                    }
                    if finished {
                        return Ok((calls, g));
                    }
                }
            })
        })
        .collect();

    if pin {
        assert!(common::pin_to(cpus[0]), "sched_setaffinity failed");
    }
    ready.wait();
    let mut last = 0;
    for k in ENTRIES as u32..=GENERATIONS {
        // Past the deadline, stop only once enough generations were tested: a slow emulator
        // then takes longer instead of failing the count below.
        if Instant::now() > deadline && last >= 2 * ENTRIES as u32 {
            break;
        }
        let e = k as usize % ENTRIES;
        let s = slot(k);
        let code = sled_ret_imm(SLED, k as u16);
        // SAFETY: slot k is fresh: no jump has ever led there.
        unsafe { map.write_unpublished(s, &code) };
        // SAFETY: inside the live, readable mapping.
        unsafe { icache::clear_cache(map.ptr_at(s), code.len()) }.unwrap();
        // Readers run through the entry all the time and may take the new jump before the
        // flush below, so each must have synchronised after slot k became coherent (Arm ARM:
        // a context synchronisation on the executing core after the invalidation completes).
        common::flush_mt_or_fail();
        // SAFETY: entries are only ever written by `patch`; the mapping is RWX.
        unsafe { map.patch(entry(e), &native::jump(base + entry(e), base + s)) };
        // SAFETY: as above.
        unsafe { icache::clear_cache(map.ptr_at(entry(e)), PATCH_LEN) }.unwrap();
        common::flush_mt_or_fail();
        generation.store(k, Ordering::Release);
        last = k;
        // Give the readers a moment at every generation without ever blocking on them.
        std::thread::yield_now();
    }
    done.store(true, Ordering::Release);
    let mut calls = 0;
    for h in handles {
        let (c, g) = h.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g, last, "a reader finished without seeing the last publish");
        calls += c;
    }
    if pin {
        // Let this test thread run anywhere again.
        unpin(&cpus);
    }
    (last, calls, pin)
}

/// Restores the original affinity of the calling thread.
fn unpin(cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is an empty set, a valid value.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` came from sched_getaffinity, so it is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the pointer and size describe `set`, which the kernel only reads.
    let r = unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) };
    assert_eq!(r, 0, "sched_setaffinity failed");
}

#[test]
fn floor_is_the_last_patch_of_each_entry() {
    first_use_race();
    // Brute force over a model of the patcher.
    let mut last = [0u32; ENTRIES];
    for g in 0..100u32 {
        if g >= ENTRIES as u32 {
            last[g as usize % ENTRIES] = g;
        }
        for (e, &want) in last.iter().enumerate() {
            assert_eq!(floor(e, g), want, "entry {e}, generation {g}");
        }
    }
}

/// Pinned readers run four patched entries in a loop while one thread publishes new code;
/// rounds repeat until `ICACHE_STRESS_SECONDS` (default 2) have passed.
#[test]
fn pinned_readers_see_every_publish() {
    first_use_race();
    let seconds: u64 = std::env::var("ICACHE_STRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let (mut rounds, mut generations, mut calls, mut pinned) = (0, 0, 0, false);
    while rounds == 0 || Instant::now() < deadline {
        let (g, c, p) = publish_round(deadline);
        rounds += 1;
        generations += g;
        calls += c;
        pinned = p;
    }
    assert!(
        generations >= 2 * ENTRIES as u32,
        "only {generations} generations"
    );
    eprintln!(
        "pinned_readers_see_every_publish: {rounds} rounds, {generations} generations, {calls} \
         calls, readers {} in {:?}",
        if pinned {
            "pinned"
        } else {
            "unpinned (one CPU)"
        },
        start.elapsed()
    );
}

/// Many threads clear and run code concurrently, all the time, not only at first use.
#[test]
fn concurrent_clear_cache() {
    first_use_race();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut map = CodeMap::new(2 * page_size()).unwrap();
                barrier.wait();
                for round in 0..100u16 {
                    let value = t as u16 * 1000 + round;
                    let code = ret_imm(value);
                    // Walk the code across the page boundary and every line boundary near it.
                    let offset = page_size() - 64 + (round as usize * 6) % 64;
                    let offset = offset / native::CODE_ALIGN * native::CODE_ALIGN;
                    map.make_rw().unwrap();
                    map.write(offset, &code);
                    icache::clear_cache_slice(map.slice(offset, code.len())).unwrap();
                    map.make_rx().unwrap();
                    // SAFETY: a complete function, made coherent, executable now.
                    let f = unsafe { map.func(offset) };
                    assert_eq!(f(), u32::from(value), "thread {t} round {round}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
