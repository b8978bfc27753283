//! `wasmtime-jit-icache-coherence` 34.0.2's API, implemented by the `icache` crate.
//!
//! Put it in place of the release with `[patch.crates-io]` (see `compat/README.md`); cranelift-jit
//! 0.121 and wasmtime 34 then compile unchanged and get `icache`'s maintenance: on AArch64 the
//! release cleaned and invalidated nothing (it relied on `mprotect`), and on RISC-V it flushed
//! the calling hart only.
//!
//! `no_std` like the release. The result types are the release's: `std::io::Result` on Windows,
//! and on Linux and Android outside Miri; `anyhow::Result` elsewhere.

#![no_std]

#[cfg(any(
    windows,
    all(not(miri), any(target_os = "linux", target_os = "android"))
))]
extern crate std;

use core::ffi::c_void;

#[path = "../../common.rs"]
mod common;

// The release's result type: `std::io::Result` where its code made system calls and reported
// their errors, `anyhow::Result` elsewhere (and under Miri).
#[cfg(any(
    windows,
    all(not(miri), any(target_os = "linux", target_os = "android"))
))]
type Result<T> = std::io::Result<T>;
#[cfg(not(any(
    windows,
    all(not(miri), any(target_os = "linux", target_os = "android"))
)))]
type Result<T> = anyhow::Result<T>;

/// Makes every thread of the process that may run the new code discard instructions it fetched
/// before (Linux: `membarrier` `PRIVATE_EXPEDITED_SYNC_CORE`, registered once; Windows:
/// `FlushProcessWriteBuffers`). Call it after [`clear_cache`] in a multi-threaded program.
///
/// # Errors
/// The OS error where the flush fails. Where the release did nothing (everywhere but Linux and
/// Android AArch64) a platform or kernel without any mechanism is not an error.
pub fn pipeline_flush_mt() -> Result<()> {
    Ok(common::pipeline_flush_mt()?)
}

/// Makes `len` bytes from `ptr` coherent between data and instruction side, on every core.
///
/// # Safety
/// The range must be mapped and readable. In a multi-threaded program call [`pipeline_flush_mt`]
/// afterwards.
///
/// # Errors
/// The OS error where the system call that does the work fails (RISC-V, Windows), or an
/// `InvalidInput` one for a range that wraps around the address space.
pub unsafe fn clear_cache(ptr: *const c_void, len: usize) -> Result<()> {
    // SAFETY: the caller guarantees the range is mapped and readable.
    Ok(unsafe { common::clear_cache(ptr, len) }?)
}
