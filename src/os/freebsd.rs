//! The thin FreeBSD layer: `membarrier` (FreeBSD 14.1+, system call 584 in
//! `sys/kern/syscalls.master`), with the same commands as Linux; the choice between them is
//! shared with Linux in `src/flush/membarrier.rs`.
//!
//! Cache maintenance needs no system call here: on AArch64 FreeBSD sets `SCTLR_EL1.UCT` and
//! `SCTLR_EL1.UCI` (`sctlr_set` in `sys/arm64/arm64/locore.S`), so EL0 may read `CTR_EL0` and
//! issue `dc cvau` / `ic ivau` exactly as on Linux; x86-64 is coherent. FreeBSD/RISC-V offers no
//! user-space instruction-cache flush (`sys/riscv/include/sysarch.h` defines no operation), so
//! `clear_cache` reports `Unsupported` there.

/// This thread's `errno`.
#[inline]
pub(super) fn errno() -> i32 {
    // SAFETY: libc returns a valid pointer to this thread's errno.
    unsafe { *libc::__error() }
}

/// `membarrier(2)`'s number in `sys/kern/syscalls.master`. The `libc` crate does not have it yet.
const SYS_MEMBARRIER: libc::c_int = 584;

/// `__FreeBSD_version` of 14.1-RELEASE, where `membarrier(2)` first appeared (its manual page,
/// HISTORY).
const MEMBARRIER_OSRELDATE: libc::c_int = 1_401_000;

/// The running kernel's `kern.osreldate`, or the errno of the `sysctl`.
fn kernel_osreldate() -> Result<libc::c_int, i32> {
    let mib = [libc::CTL_KERN, libc::KERN_OSRELDATE];
    let mut value: libc::c_int = 0;
    let mut len = core::mem::size_of::<libc::c_int>();
    // SAFETY: `mib` names a read-only integer; `value` and `len` are valid for writes and `len`
    // is the size of `value`; no new value is passed.
    let r = unsafe {
        libc::sysctl(
            mib.as_ptr(),
            mib.len() as libc::c_uint,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
            core::ptr::null(),
            0,
        )
    };
    super::errno::result(r).map(|_| value)
}

/// Whether the kernel has `membarrier`. A kernel without it would raise SIGSYS (fatal by
/// default) for the call, not merely fail it, so this is asked first. Older kernels get
/// `ENOSYS`, as the call itself would have returned.
pub fn membarrier_available() -> Result<(), i32> {
    match kernel_osreldate() {
        Ok(v) if v >= MEMBARRIER_OSRELDATE => Ok(()),
        Ok(_) => Err(libc::ENOSYS),
        Err(e) => Err(e),
    }
}

/// `membarrier(cmd, flags = 0, cpu_id = 0)`: the non-negative result, or the errno. Only called
/// once [`membarrier_available`] said yes. Through `syscall(2)` rather than libc's `membarrier`
/// symbol so that a binary built here still loads on an older libc.
pub fn membarrier(cmd: i32) -> Result<i32, i32> {
    // SAFETY: membarrier takes integers only and touches no user memory.
    let r = unsafe {
        libc::syscall(
            SYS_MEMBARRIER,
            cmd as libc::c_int,
            0 as libc::c_uint,
            0 as libc::c_int,
        )
    };
    super::errno::result(r as libc::c_int)
}
