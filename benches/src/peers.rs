//! `icache` and its peers, each called the way its documentation asks a JIT to make freshly
//! written code executable on the calling thread. Shared by the criterion bench
//! `benches/benches/clear_cache.rs` (host timings) and `benches/src/bin/peers_probe.rs`
//! (instruction counts under qemu-user), so both measure the same calls.
//!
//! | name | one range | cross-thread flush |
//! |---|---|---|
//! | `icache` | `clear_cache` | `pipeline_flush_mt` |
//! | `wasmtime34` | `wasmtime-jit-icache-coherence` 34 `clear_cache` | its `pipeline_flush_mt` |
//! | `wasmtime48` | `wasmtime-internal-jit-icache-coherence` 48 `clear_cache` | its `pipeline_flush_mt` |
//! | `wasmtime50` | `wasmtime-internal-jit-icache-coherence` 50 `clear_cache` | its `pipeline_flush_mt` |
//! | `clear-cache` | `clear_cache(start, end)` (returns `bool`) | none |
//! | `dynasmrt` | `cache_control::synchronize_icache` then `prepare_for_execution` | none |
//! | `libgcc` | `__clear_cache(start, end)` (GNU/Linux only) | none |
//! | `raw` | | one `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)` syscall: the floor |

/// The error is only the failing implementation's name: formatting a message would give every
/// wrapper a stack frame and so distort the instruction counts.
pub type Res = Result<(), &'static str>;

#[inline(always)]
fn fail<E>(what: &'static str) -> impl FnOnce(E) -> &'static str {
    move |_| what
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    /// libgcc's runtime behind `__builtin___clear_cache`: exported by `libgcc_s` on every
    /// GNU/Linux target (an empty function where the caches are coherent).
    fn __clear_cache(start: *mut std::ffi::c_void, end: *mut std::ffi::c_void);
}

/// # Safety
/// The range is mapped and readable.
#[inline(always)]
pub unsafe fn icache(ptr: *const u8, len: usize) -> Res {
    // SAFETY: forwarded from the caller.
    unsafe { icache::clear_cache(ptr.cast(), len) }.map_err(fail("icache"))
}

/// # Safety
/// The range is mapped and readable.
#[inline(always)]
pub unsafe fn wasmtime34(ptr: *const u8, len: usize) -> Res {
    // SAFETY: forwarded from the caller.
    unsafe { wasmtime_jit_icache_coherence::clear_cache(ptr.cast(), len) }
        .map_err(fail("wasmtime34"))
}

/// # Safety
/// The range is mapped and readable.
#[inline(always)]
pub unsafe fn wasmtime48(ptr: *const u8, len: usize) -> Res {
    // SAFETY: forwarded from the caller.
    unsafe { wt48::clear_cache(ptr.cast(), len) }.map_err(fail("wasmtime48"))
}

/// # Safety
/// The range is mapped and readable.
#[inline(always)]
pub unsafe fn wasmtime50(ptr: *const u8, len: usize) -> Res {
    // SAFETY: forwarded from the caller.
    unsafe { wt50::clear_cache(ptr.cast(), len) }.map_err(fail("wasmtime50"))
}

/// # Safety
/// The range is mapped and readable.
// clear-cache is a dependency only where it compiles (see Cargo.toml).
#[cfg(any(
    target_arch = "x86",
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    target_arch = "arm"
))]
#[inline(always)]
pub unsafe fn clear_cache_crate(ptr: *const u8, len: usize) -> Res {
    // SAFETY: forwarded from the caller; the end is one past the range.
    match unsafe { clear_cache::clear_cache(ptr, ptr.wrapping_add(len)) } {
        true => Ok(()),
        false => Err("clear-cache returned false"),
    }
}

/// # Safety
/// The range is mapped and readable, and stays so during the call.
#[inline(always)]
pub unsafe fn dynasmrt(ptr: *const u8, len: usize) -> Res {
    // SAFETY: forwarded from the caller: the range is live and readable; nothing writes it now.
    let code = unsafe { std::slice::from_raw_parts(ptr, len) };
    dynasmrt::cache_control::synchronize_icache(code);
    dynasmrt::cache_control::prepare_for_execution(code);
    Ok(())
}

/// # Safety
/// The range is mapped and readable.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[inline(always)]
pub unsafe fn libgcc(ptr: *const u8, len: usize) -> Res {
    let end = ptr.wrapping_add(len);
    // SAFETY: forwarded from the caller; libgcc only runs cache maintenance (or a system call)
    // on the range.
    unsafe { __clear_cache(ptr.cast_mut().cast(), end.cast_mut().cast()) };
    Ok(())
}

#[inline(always)]
pub fn icache_flush() -> Res {
    icache::pipeline_flush_mt().map_err(fail("icache"))
}

#[inline(always)]
pub fn wasmtime34_flush() -> Res {
    wasmtime_jit_icache_coherence::pipeline_flush_mt().map_err(fail("wasmtime34"))
}

#[inline(always)]
pub fn wasmtime48_flush() -> Res {
    wt48::pipeline_flush_mt().map_err(fail("wasmtime48"))
}

#[inline(always)]
pub fn wasmtime50_flush() -> Res {
    wt50::pipeline_flush_mt().map_err(fail("wasmtime50"))
}

/// `membarrier(cmd, 0, 0)`: 32 is `PRIVATE_EXPEDITED_SYNC_CORE`, 64 its registration.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline(always)]
pub fn raw_membarrier(cmd: i32) -> Res {
    // SAFETY: membarrier takes integers only and touches no user memory.
    match unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0, 0) } {
        0 => Ok(()),
        _ => Err("membarrier"),
    }
}
