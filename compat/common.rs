//! The part the three compat crates share, included by each with `#[path]` (they cannot share a
//! library crate: two of them have the same package name). It calls `icache` and decides which
//! of its errors a wasmtime release would have reported; it does no cache maintenance itself.

use core::ffi::c_void;

/// Whether the release's `pipeline_flush_mt` did something here (and so could fail): every
/// release makes a `membarrier` call on Linux and Android AArch64 and nowhere else that can fail
/// (Windows' `FlushProcessWriteBuffers` cannot).
const RELEASE_FLUSHED: bool = cfg!(all(
    target_arch = "aarch64",
    any(target_os = "linux", target_os = "android")
));

/// `icache::clear_cache`, except that where `icache` knows no mechanism at all (it returns
/// `Unsupported` with no OS error, e.g. on powerpc64) the call succeeds, as the release's empty
/// function did: a JIT that ran before must not start to panic in `.expect()`.
///
/// # Safety
/// As for `icache::clear_cache`: the range must be mapped and readable.
#[inline]
pub(crate) unsafe fn clear_cache(ptr: *const c_void, len: usize) -> Result<(), icache::Error> {
    // Miri cannot run cache maintenance; the releases do nothing under it either.
    if cfg!(miri) {
        return Ok(());
    }
    // SAFETY: the caller guarantees what `icache::clear_cache` needs.
    match unsafe { icache::clear_cache(ptr, len) } {
        Err(e) if e.kind() == icache::ErrorKind::Unsupported && e.raw_os_error().is_none() => {
            Ok(())
        }
        other => other,
    }
}

/// `icache::pipeline_flush_mt`, except that where the release did nothing (x86, RISC-V, Apple,
/// ...) an `Unsupported` answer (no mechanism, or the kernel or a sandbox refused every one) is
/// dropped: the release could not fail there, and this is never weaker than it was.
#[inline]
pub(crate) fn pipeline_flush_mt() -> Result<(), icache::Error> {
    if cfg!(miri) {
        return Ok(());
    }
    match icache::pipeline_flush_mt() {
        Err(e) if !RELEASE_FLUSHED && e.kind() == icache::ErrorKind::Unsupported => Ok(()),
        other => other,
    }
}
