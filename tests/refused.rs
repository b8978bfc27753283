//! Linux RISC-V when the kernel refuses the `prctl` that makes a user `fence.i` valid (a seccomp
//! filter here; Linux before 6.10 answers `EINVAL` the same way): `clear_cache` must fall back
//! to `riscv_flush_icache`, `pipeline_flush_local` must say `Unsupported` with the errno, and
//! written code must still run.
//!
//! The filter is installed in a forked child, so the rest of the suite keeps the `fence.i` path.
//! It needs a kernel that runs RISC-V seccomp filters: on the real kernels (`.ci/kernels.sh`,
//! which sets `ICACHE_KERNEL_GUEST`) the test must run; qemu-user does not emulate seccomp, and
//! there the child reports that it could not install the filter and the test says it skipped.

#![cfg(all(target_arch = "riscv64", target_os = "linux"))]

// Only the native encoder and the mapping of the shared helpers are used here.
#[allow(unused_imports)]
mod common;

use common::native::ret_imm;
use common::{page_size, CodeMap};

/// `prctl`'s number in the generic system-call table RISC-V uses.
const NR_PRCTL: u32 = 167;
const PR_RISCV_SET_ICACHE_FLUSH_CTX: u32 = 71;
/// `AUDIT_ARCH_RISCV64`: EM_RISCV (243) | 64-bit | little-endian.
const AUDIT_ARCH_RISCV64: u32 = 243 | 0x8000_0000 | 0x4000_0000;

/// Exit codes of the child, one per way it can fail.
const SKIPPED: i32 = 77;
const WRONG_PATH: i32 = 2;
const LOCAL_NOT_REFUSED: i32 = 3;
const CLEAR_FAILED: i32 = 4;
const WRONG_VALUE: i32 = 5;

/// Installs a filter that fails `prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, ...)` with `EPERM` and
/// lets everything else through.
fn refuse_icache_prctl() -> Result<(), ()> {
    use libc::{sock_filter, sock_fprog};
    let stmt = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    // struct seccomp_data: nr at 0, arch at 4, args[0] at 16 (low word first: little-endian).
    let filter = [
        stmt(load, 4),
        jeq(AUDIT_ARCH_RISCV64, 0, 4),
        stmt(load, 0),
        jeq(NR_PRCTL, 0, 2),
        stmt(load, 16),
        jeq(PR_RISCV_SET_ICACHE_FLUSH_CTX, 1, 0),
        stmt(ret, libc::SECCOMP_RET_ALLOW),
        stmt(ret, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    let prog = sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut sock_filter,
    };
    // SAFETY: plain integer arguments; `prog` points to a filter that lives across the call.
    let ok = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const sock_fprog,
            ) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// What the child does: nothing that allocates or locks (the parent has other threads), an
/// exit code for each way it can fail.
fn child(map: &CodeMap, code: &[u8], value: u16) -> i32 {
    if refuse_icache_prctl().is_err() {
        return SKIPPED;
    }
    if icache::cache_info().maintenance != icache::Maintenance::SystemCall {
        return WRONG_PATH;
    }
    match icache::pipeline_flush_local() {
        Err(e)
            if e.kind() == icache::ErrorKind::Unsupported
                && e.raw_os_error() == Some(libc::EPERM) => {}
        _ => return LOCAL_NOT_REFUSED,
    }
    // SAFETY: the child is single-threaded: nothing runs the page while it is written.
    unsafe { map.write_unpublished(0, code) };
    // SAFETY: inside the live, readable mapping.
    if unsafe { icache::clear_cache(map.ptr_at(0), code.len()) }.is_err() {
        return CLEAR_FAILED;
    }
    // SAFETY: a complete function was written and made coherent just above.
    if unsafe { map.func(0) }() != u32::from(value) {
        return WRONG_VALUE;
    }
    0
}

#[test]
fn refused_prctl_falls_back_to_the_system_call() {
    let value = 0x1234;
    let code = ret_imm(value);
    let mut map = CodeMap::new(page_size()).unwrap();
    map.make_rwx().unwrap();
    // SAFETY: the child only runs `child`, which neither allocates nor takes locks, and leaves
    // with `_exit`; the parent only waits for it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let status = child(&map, &code, value);
        // SAFETY: ends the child without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(status) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is valid for writes.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status),
        "child ended by signal: status {status:#x}"
    );
    let code = libc::WEXITSTATUS(status);
    if code == SKIPPED {
        assert!(
            std::env::var_os("ICACHE_KERNEL_GUEST").is_none(),
            "a real kernel refused the seccomp filter"
        );
        eprintln!("refused_prctl_falls_back_to_the_system_call: skipped: no seccomp here");
        return;
    }
    assert_eq!(
        code, 0,
        "child exit code {code} (2: wrong path, 3: pipeline_flush_local not refused, 4: \
         clear_cache failed, 5: stale code)"
    );
}
