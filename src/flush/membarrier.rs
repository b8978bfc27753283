//! The cross-thread pipeline flush on kernels with `membarrier`: Linux, Android and FreeBSD 14.1+
//! (FreeBSD's `sys/kern/kern_membarrier.c` takes the same commands with the same numbers).
//! The strongest mechanism the kernel allows is chosen once per process and remembered; each
//! OS module only provides the raw system calls (`os::membarrier`, `os::membarrier_available`).

use crate::os;
use crate::{Error, ErrorKind, PipelineFlush};
use core::sync::atomic::{AtomicU32, Ordering};

/// `membarrier` commands, from Linux's `include/uapi/linux/membarrier.h` (FreeBSD's
/// `sys/sys/membarrier.h` has the same values). The registration of the plain expedited
/// command is in the one fallback that uses it.
mod cmd {
    pub const QUERY: i32 = 0;
    pub const GLOBAL: i32 = 1;
    pub const PRIVATE_EXPEDITED: i32 = 8;
    pub const PRIVATE_EXPEDITED_SYNC_CORE: i32 = 32;
    pub const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: i32 = 64;
}

/// The chosen mechanism, or 0 for "not chosen yet", or `FAILED | errno << 8`.
static STATE: AtomicU32 = AtomicU32::new(0);
const FAILED: u32 = 0xff;

fn encode(m: PipelineFlush) -> u32 {
    match m {
        PipelineFlush::MembarrierSyncCore => 1,
        PipelineFlush::MembarrierPrivateExpedited => 2,
        PipelineFlush::MembarrierGlobal => 3,
        PipelineFlush::RiscvFlushIcache => 4,
        // Other platforms' mechanisms are never chosen here; "failed, no errno" if they were.
        _ => FAILED,
    }
}

fn decode(state: u32) -> Result<PipelineFlush, Error> {
    Ok(match state {
        1 => PipelineFlush::MembarrierSyncCore,
        2 => PipelineFlush::MembarrierPrivateExpedited,
        3 => PipelineFlush::MembarrierGlobal,
        4 => PipelineFlush::RiscvFlushIcache,
        _ => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "pipeline_flush_mt",
                (state >> 8) as i32,
            ))
        }
    })
}

/// Finds the strongest mechanism this kernel (and any seccomp filter) allows and registers it.
///
/// Order and reasoning:
/// 1. `PRIVATE_EXPEDITED_SYNC_CORE`: the kernel guarantees every running thread of the process
///    executes a core-serialising instruction before the call returns, and every other one before
///    it next returns to user space. Exactly what is needed, on every architecture.
/// 2. Linux RISC-V: `riscv_flush_icache(0, 0, 0)` makes every hart running the process execute
///    `fence.i` (by IPI or SBI) and marks the others to do so before they run it again. An IPI
///    alone would not do: returning from a trap does not synchronise instruction fetch there.
///    LoongArch (and RISC-V elsewhere): nothing else is known to be enough, so no fallback.
/// 3. Elsewhere, `PRIVATE_EXPEDITED`: an IPI to every CPU running a thread of the process; the
///    return from that interrupt is a context-synchronisation event on Arm (exception return,
///    Arm ARM "Context synchronization event") and serialising on x86 (`iret`, SDM vol. 3A
///    "Serializing instructions"); threads not running pass through the kernel before they run.
/// 4. `GLOBAL`: waits for an RCU grace period, in which every CPU passes through the kernel
///    (a tick or a context switch) and so through an exception return. Slow (milliseconds),
///    and weaker on `nohz_full` CPUs that take no tick; the last resort, documented as such.
fn choose() -> Result<PipelineFlush, i32> {
    // FreeBSD before 14.1 has no membarrier, and calling a missing system call there raises
    // SIGSYS (`nosys()` in `sys/kern/kern_sig.c`), which kills the process: ask first.
    os::membarrier_available()?;
    let mut last_errno = 0;
    let mask = match os::membarrier(cmd::QUERY) {
        Ok(mask) => mask,
        Err(e) => {
            last_errno = e;
            0
        }
    };
    let has = |c: i32| mask & c == c;
    if has(cmd::PRIVATE_EXPEDITED_SYNC_CORE | cmd::REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) {
        match os::membarrier(cmd::REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) {
            Ok(_) => return Ok(PipelineFlush::MembarrierSyncCore),
            Err(e) => last_errno = e,
        }
    }
    fallback(mask, last_errno)
}

/// Linux RISC-V, after `SYNC_CORE`: the kernel's own cross-hart flush. Its result supersedes
/// membarrier's.
#[cfg(all(
    target_arch = "riscv64",
    any(target_os = "linux", target_os = "android")
))]
fn fallback(_mask: i32, _last_errno: i32) -> Result<PipelineFlush, i32> {
    os::riscv_flush_icache(0, 0, 0).map(|()| PipelineFlush::RiscvFlushIcache)
}

/// RISC-V elsewhere and LoongArch: no argument that an interrupt return synchronises instruction
/// fetch, so nothing after `SYNC_CORE`.
#[cfg(all(
    any(target_arch = "riscv64", target_arch = "loongarch64"),
    not(all(
        target_arch = "riscv64",
        any(target_os = "linux", target_os = "android")
    ))
))]
fn fallback(_mask: i32, last_errno: i32) -> Result<PipelineFlush, i32> {
    Err(last_errno)
}

/// Arm, x86 and the rest: an interrupt's return synchronises the context (steps 3 and 4 above).
#[cfg(not(any(target_arch = "riscv64", target_arch = "loongarch64")))]
fn fallback(mask: i32, mut last_errno: i32) -> Result<PipelineFlush, i32> {
    const REGISTER_PRIVATE_EXPEDITED: i32 = 16;
    let has = |c: i32| mask & c == c;
    if has(cmd::PRIVATE_EXPEDITED | REGISTER_PRIVATE_EXPEDITED) {
        match os::membarrier(REGISTER_PRIVATE_EXPEDITED) {
            Ok(_) => return Ok(PipelineFlush::MembarrierPrivateExpedited),
            Err(e) => last_errno = e,
        }
    }
    if has(cmd::GLOBAL) {
        return Ok(PipelineFlush::MembarrierGlobal);
    }
    Err(last_errno)
}

#[cold]
fn choose_and_remember() -> Result<PipelineFlush, Error> {
    let state = match choose() {
        Ok(m) => encode(m),
        Err(errno) => FAILED | ((errno as u32) << 8),
    };
    // Racing first callers all register (registration is idempotent) and store the same state.
    STATE.store(state, Ordering::Relaxed);
    decode(state)
}

/// Chooses and registers the mechanism once per process; later calls only read it.
pub fn prepare_pipeline_flush() -> Result<PipelineFlush, Error> {
    match STATE.load(Ordering::Relaxed) {
        0 => choose_and_remember(),
        state => decode(state),
    }
}

/// One system call in the steady state. The common case (SYNC_CORE registered) is inlined and
/// makes the syscall directly; everything else is out of line.
#[inline]
pub fn pipeline_flush_mt() -> Result<(), Error> {
    if STATE.load(Ordering::Relaxed) == 1 {
        return match os::membarrier(cmd::PRIVATE_EXPEDITED_SYNC_CORE) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::new(
                ErrorKind::Os,
                "membarrier(PRIVATE_EXPEDITED_SYNC_CORE)",
                e,
            )),
        };
    }
    pipeline_flush_other()
}

/// The first call, the fallbacks, and a remembered failure.
#[cold]
#[inline(never)]
fn pipeline_flush_other() -> Result<(), Error> {
    let (cmd, op) = match STATE.load(Ordering::Relaxed) {
        1 => (
            cmd::PRIVATE_EXPEDITED_SYNC_CORE,
            "membarrier(PRIVATE_EXPEDITED_SYNC_CORE)",
        ),
        2 => (cmd::PRIVATE_EXPEDITED, "membarrier(PRIVATE_EXPEDITED)"),
        3 => (cmd::GLOBAL, "membarrier(GLOBAL)"),
        #[cfg(all(
            target_arch = "riscv64",
            any(target_os = "linux", target_os = "android")
        ))]
        4 => {
            return os::riscv_flush_icache(0, 0, 0)
                .map_err(|e| Error::new(ErrorKind::Os, "riscv_flush_icache(flags = 0)", e));
        }
        // Not chosen yet (0), or a remembered failure: the choice says which.
        _ => {
            prepare_pipeline_flush()?;
            return pipeline_flush_mt();
        }
    };
    match os::membarrier(cmd) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::new(ErrorKind::Os, op, e)),
    }
}
