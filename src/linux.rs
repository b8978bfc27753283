//! The thin Linux (and Android) layer: every system call the crate makes, wrapped once, errors
//! carried as the kernel gave them, plus the choice of the cross-thread pipeline flush.

use crate::{Error, PipelineFlush};
use core::sync::atomic::{AtomicU32, Ordering};

/// `membarrier` commands, from `include/uapi/linux/membarrier.h`.
#[allow(dead_code)] // RISC-V never falls back to the plain expedited commands.
mod cmd {
    pub const QUERY: i32 = 0;
    pub const GLOBAL: i32 = 1;
    pub const PRIVATE_EXPEDITED: i32 = 8;
    pub const REGISTER_PRIVATE_EXPEDITED: i32 = 16;
    pub const PRIVATE_EXPEDITED_SYNC_CORE: i32 = 32;
    pub const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: i32 = 64;
}

fn errno() -> i32 {
    // SAFETY: the libc returns a valid pointer to this thread's errno.
    unsafe {
        cfg_if::cfg_if! {
            if #[cfg(target_os = "android")] {
                *libc::__errno()
            } else {
                *libc::__errno_location()
            }
        }
    }
}

/// `membarrier(cmd, flags = 0, cpu_id = 0)`: the non-negative result, or the errno.
pub fn membarrier(cmd: i32) -> Result<i32, i32> {
    // SAFETY: membarrier takes integers only and touches no user memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd as libc::c_int,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as i32)
    }
}

/// `riscv_flush_icache(start, end, flags)`, syscall 259 (`arch/riscv/include/uapi/asm/unistd.h`).
/// Flags 0 flushes every hart that runs this process; 1 (`SYS_RISCV_FLUSH_ICACHE_LOCAL`, which is
/// also what the header's `SYS_RISCV_FLUSH_ICACHE_ALL` mask equals) only the caller's.
#[cfg(target_arch = "riscv64")]
pub fn riscv_flush_icache(start: usize, end: usize, flags: usize) -> Result<(), i32> {
    const NR_RISCV_FLUSH_ICACHE: libc::c_long = 259;
    // SAFETY: the kernel only uses the range as a hint (today it ignores it); no memory is
    // accessed through it.
    let r = unsafe { libc::syscall(NR_RISCV_FLUSH_ICACHE, start, end, flags) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// The 32-bit Arm private `cacheflush(start, end, 0)` syscall, number 0x0f0002
/// (`arch/arm/include/uapi/asm/unistd.h`): cleans the D-cache and invalidates the I-cache for the
/// range, with the barriers, in the kernel (EL0 cannot do cache maintenance on 32-bit Arm).
#[cfg(target_arch = "arm")]
pub fn arm_cacheflush(start: usize, end: usize) -> Result<(), i32> {
    const ARM_NR_CACHEFLUSH: libc::c_long = 0x0f0002;
    // SAFETY: the kernel checks the range against the process's mappings itself.
    let r = unsafe { libc::syscall(ARM_NR_CACHEFLUSH, start, end, 0 as libc::c_int) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
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
    }
}

fn decode(state: u32) -> Result<PipelineFlush, Error> {
    Ok(match state {
        1 => PipelineFlush::MembarrierSyncCore,
        2 => PipelineFlush::MembarrierPrivateExpedited,
        3 => PipelineFlush::MembarrierGlobal,
        4 => PipelineFlush::RiscvFlushIcache,
        _ => return Err(Error::unsupported("pipeline_flush_mt", (state >> 8) as i32)),
    })
}

/// Finds the strongest mechanism this kernel (and any seccomp filter) allows and registers it.
///
/// Order and reasoning:
/// 1. `PRIVATE_EXPEDITED_SYNC_CORE`: the kernel guarantees every running thread of the process
///    executes a core-serialising instruction before the call returns, and every other one before
///    it next returns to user space. Exactly what is needed, on every architecture.
/// 2. RISC-V: `riscv_flush_icache(0, 0, 0)` makes every hart running the process execute
///    `fence.i` (by IPI or SBI) and marks the others to do so before they run it again. An IPI
///    alone would not do: returning from a trap does not synchronise instruction fetch there.
/// 3. Elsewhere, `PRIVATE_EXPEDITED`: an IPI to every CPU running a thread of the process; the
///    return from that interrupt is a context-synchronisation event on Arm (exception return,
///    Arm ARM "Context synchronization event") and serialising on x86 (`iret`, SDM vol. 3A
///    "Serializing instructions"); threads not running pass through the kernel before they run.
/// 4. `GLOBAL`: waits for an RCU grace period, in which every CPU passes through the kernel
///    (a tick or a context switch) and so through an exception return. Slow (milliseconds),
///    and weaker on `nohz_full` CPUs that take no tick; the last resort, documented as such.
fn choose() -> Result<PipelineFlush, i32> {
    let mut last_errno = 0;
    let mask = match membarrier(cmd::QUERY) {
        Ok(mask) => mask,
        Err(e) => {
            last_errno = e;
            0
        }
    };
    let has = |c: i32| mask & c == c;
    if has(cmd::PRIVATE_EXPEDITED_SYNC_CORE | cmd::REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) {
        match membarrier(cmd::REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) {
            Ok(_) => return Ok(PipelineFlush::MembarrierSyncCore),
            Err(e) => last_errno = e,
        }
    }
    cfg_if::cfg_if! {
        if #[cfg(target_arch = "riscv64")] {
            // The flush syscall's own result supersedes membarrier's.
            let _ = last_errno;
            riscv_flush_icache(0, 0, 0).map(|()| PipelineFlush::RiscvFlushIcache)
        } else {
            if has(cmd::PRIVATE_EXPEDITED | cmd::REGISTER_PRIVATE_EXPEDITED) {
                match membarrier(cmd::REGISTER_PRIVATE_EXPEDITED) {
                    Ok(_) => return Ok(PipelineFlush::MembarrierPrivateExpedited),
                    Err(e) => last_errno = e,
                }
            }
            if has(cmd::GLOBAL) {
                return Ok(PipelineFlush::MembarrierGlobal);
            }
            Err(last_errno)
        }
    }
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

/// One system call in the steady state.
#[inline]
pub fn pipeline_flush_mt() -> Result<(), Error> {
    let (cmd, op) = match STATE.load(Ordering::Relaxed) {
        1 => (
            cmd::PRIVATE_EXPEDITED_SYNC_CORE,
            "membarrier(PRIVATE_EXPEDITED_SYNC_CORE)",
        ),
        2 => (cmd::PRIVATE_EXPEDITED, "membarrier(PRIVATE_EXPEDITED)"),
        3 => (cmd::GLOBAL, "membarrier(GLOBAL)"),
        #[cfg(target_arch = "riscv64")]
        4 => {
            return riscv_flush_icache(0, 0, 0)
                .map_err(|e| Error::os("riscv_flush_icache(flags = 0)", e));
        }
        _ => {
            prepare_pipeline_flush()?;
            return pipeline_flush_mt();
        }
    };
    match membarrier(cmd) {
        Ok(_) => Ok(()),
        Err(e) => Err(Error::os(op, e)),
    }
}
