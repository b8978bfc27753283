//! The thin Linux (and Android) layer: every system call the crate makes, wrapped once, errors
//! carried as the kernel gave them. The choice of the cross-thread pipeline flush, shared with
//! FreeBSD, is in `src/membarrier.rs`.

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
