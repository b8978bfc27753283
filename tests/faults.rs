//! `pipeline_flush_mt` when the kernel or a sandbox refuses `membarrier`.
//!
//! `.ci/faults.sh` runs this binary under `tests/seccomp/inject.c`, a launcher whose seccomp
//! filter makes `membarrier` fail, natively and under qemu-user, and tells it what was injected:
//!
//! * `ICACHE_FAULTS`: `none` (default), `einval-synccore` (EINVAL for the two SYNC_CORE
//!   commands), `enosys` or `eperm` (every `membarrier` fails so);
//! * `ICACHE_FAULTS_CALLS`: how many times `flushes_report_what_was_done` flushes (default 100);
//!   the script counts the system calls with strace for two values.
//!
//! Each test is also meaningful alone (the script runs them one per process, so that the racing
//! test really is the process's first call). Without the variables, plain `cargo test` checks the
//! unfiltered machine.
#![cfg(any(target_os = "linux", target_os = "android"))]

use icache::{ErrorKind, PipelineFlush};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

/// What the library must report: a mechanism, or `Unsupported` with this errno.
type Expected = Result<PipelineFlush, i32>;

const EPERM: i32 = 1;
const EINVAL: i32 = 22;
const ENOSYS: i32 = 38;

/// `membarrier(MEMBARRIER_CMD_QUERY)` made directly, as an independent look at the kernel.
fn raw_query() -> Result<i32, i32> {
    // SAFETY: membarrier takes integers only and touches no user memory; QUERY has no effect.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as i32)
    }
}

/// The injected mode from the environment; `none` when unset.
fn mode() -> String {
    std::env::var("ICACHE_FAULTS").unwrap_or_else(|_| "none".into())
}

/// The outcome `choose()` in `src/flush/membarrier.rs` documents for the injected mode on this architecture.
/// `None` when the unfiltered kernel lacks SYNC_CORE: then only consistency is checked.
fn expected() -> Option<Expected> {
    let riscv = cfg!(target_arch = "riscv64");
    let mode = mode();
    let refused = |errno: i32| {
        if riscv {
            // Falls back to riscv_flush_icache(0, 0, 0), which qemu-user and kernels accept.
            Ok(PipelineFlush::RiscvFlushIcache)
        } else {
            Err(errno)
        }
    };
    Some(match mode.as_str() {
        "none" => match raw_query() {
            Ok(mask) if mask & (32 | 64) == 32 | 64 => Ok(PipelineFlush::MembarrierSyncCore),
            _ => return None,
        },
        "einval-synccore" => {
            // The injection must leave the rest of membarrier to the kernel.
            let mask = raw_query().expect("einval-synccore: QUERY must reach the kernel");
            assert_eq!(
                mask & (8 | 16),
                8 | 16,
                "kernel lacks PRIVATE_EXPEDITED: {mask:#x}"
            );
            if riscv {
                Ok(PipelineFlush::RiscvFlushIcache)
            } else {
                Ok(PipelineFlush::MembarrierPrivateExpedited)
            }
        }
        "enosys" => {
            assert_eq!(
                raw_query(),
                Err(ENOSYS),
                "the ENOSYS filter is not in place"
            );
            refused(ENOSYS)
        }
        "eperm" => {
            assert_eq!(raw_query(), Err(EPERM), "the EPERM filter is not in place");
            refused(EPERM)
        }
        other => panic!("unknown ICACHE_FAULTS mode {other:?}"),
    })
}

/// The library's answer in the same shape, insisting that a failure is `Unsupported` with the
/// errno the kernel gave.
fn prepared() -> Expected {
    match icache::prepare_pipeline_flush() {
        Ok(m) => Ok(m),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            Err(e
                .raw_os_error()
                .expect("an Unsupported from the kernel carries its errno"))
        }
    }
}

fn check_against_environment(got: Expected) {
    let mode = mode();
    match expected() {
        Some(want) => assert_eq!(got, want, "mode {mode}"),
        None => eprintln!("mode {mode}: kernel without SYNC_CORE, chose {got:?}"),
    }
    // Whatever was chosen, EINVAL never comes out as the reason on these kernels: it only
    // stands for a missing command, for which a fallback exists.
    assert_ne!(got, Err(EINVAL), "mode {mode}");
}

#[test]
fn mechanism_matches_environment() {
    let first = prepared();
    check_against_environment(first);
    // Chosen once and remembered, success or failure.
    assert_eq!(prepared(), first);
    assert_eq!(prepared(), first);
}

/// Several threads make the process's first call at once: they must all agree.
#[test]
fn first_calls_race_and_agree() {
    const THREADS: usize = 4;
    let start = Arc::new(Barrier::new(THREADS));
    let answers: Vec<Expected> = (0..THREADS)
        .map(|_| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                prepared()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("a racing thread panicked"))
        .collect();
    check_against_environment(answers[0]);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(prepared(), answers[0]);
}

/// `ICACHE_FAULTS_CALLS` flushes while other threads run: each one succeeds exactly when a
/// mechanism was found, and otherwise reports the same `Unsupported` error every time.
#[test]
fn flushes_report_what_was_done() {
    let calls: usize = std::env::var("ICACHE_FAULTS_CALLS")
        .ok()
        .map(|s| s.parse().expect("ICACHE_FAULTS_CALLS must be a number"))
        .unwrap_or(100);
    // Threads busy in user space, so that an expedited membarrier has CPUs to interrupt. They
    // make no system calls of their own until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                n
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(calls);
    for _ in 0..calls {
        outcomes.push(icache::pipeline_flush_mt());
    }
    stop.store(true, Ordering::Relaxed);
    for s in spinners {
        s.join().expect("a spinning thread panicked");
    }
    let chosen = prepared();
    check_against_environment(chosen);
    for (i, outcome) in outcomes.iter().enumerate() {
        match (chosen, outcome) {
            (Ok(_), Ok(())) => {}
            (Err(errno), Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::Unsupported, "call {i}: {e}");
                assert_eq!(e.raw_os_error(), Some(errno), "call {i}: {e}");
            }
            (c, o) => panic!("call {i}: chose {c:?} but the flush gave {o:?}"),
        }
    }
}
