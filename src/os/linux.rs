//! The thin Linux (and Android) layer: every system call the crate makes, wrapped once, errors
//! carried as the kernel gave them. The choice of the cross-thread pipeline flush, shared with
//! FreeBSD, is in `src/flush/membarrier.rs`.

/// This thread's `errno` (glibc and musl name its location `__errno_location`, bionic `__errno`).
#[inline]
pub(super) fn errno() -> i32 {
    #[cfg(target_os = "android")]
    use libc::__errno as location;
    #[cfg(not(target_os = "android"))]
    use libc::__errno_location as location;
    // SAFETY: the libc returns a valid pointer to this thread's errno.
    unsafe { *location() }
}

/// Linux has had `membarrier` since 4.3; an older kernel answers `ENOSYS`, which the chooser
/// handles like any other refusal.
#[inline(always)]
pub fn membarrier_available() -> Result<(), i32> {
    Ok(())
}

/// `membarrier(cmd, flags = 0, cpu_id = 0)`: the non-negative result, or the errno.
#[inline]
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
    super::errno::result(r as libc::c_int)
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
    super::errno::result(r).map(|_| ())
}

/// `prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX = 71, PR_RISCV_CTX_SW_FENCEI_ON = 0,
/// PR_RISCV_SCOPE_PER_PROCESS = 0)` (`include/uapi/linux/prctl.h`, Linux 6.10+): from now on the
/// kernel runs `fence.i` on the hart any thread of this process migrates to, so a user `fence.i`
/// stays valid for the thread that ran it. Older kernels answer `EINVAL`.
#[cfg(target_arch = "riscv64")]
pub fn riscv_enable_user_fence_i() -> Result<(), i32> {
    const PR_RISCV_SET_ICACHE_FLUSH_CTX: libc::c_int = 71;
    const PR_RISCV_CTX_SW_FENCEI_ON: libc::c_ulong = 0;
    const PR_RISCV_SCOPE_PER_PROCESS: libc::c_ulong = 0;
    // SAFETY: this prctl takes two integers and touches no memory of the process.
    let r = unsafe {
        libc::prctl(
            PR_RISCV_SET_ICACHE_FLUSH_CTX,
            PR_RISCV_CTX_SW_FENCEI_ON,
            PR_RISCV_SCOPE_PER_PROCESS,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    super::errno::result(r).map(|_| ())
}

/// The 32-bit Arm private `cacheflush(start, end, 0)` syscall, number 0x0f0002
/// (`arch/arm/include/uapi/asm/unistd.h`): cleans the D-cache and invalidates the I-cache for the
/// range, with the barriers, in the kernel (EL0 cannot do cache maintenance on 32-bit Arm).
#[cfg(target_arch = "arm")]
pub fn arm_cacheflush(start: usize, end: usize) -> Result<(), i32> {
    const ARM_NR_CACHEFLUSH: libc::c_long = 0x0f0002;
    // SAFETY: the kernel checks the range against the process's mappings itself.
    let r = unsafe { libc::syscall(ARM_NR_CACHEFLUSH, start, end, 0 as libc::c_int) };
    super::errno::result(r).map(|_| ())
}
