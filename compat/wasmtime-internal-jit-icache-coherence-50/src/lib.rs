//! `wasmtime-internal-jit-icache-coherence` 50.0.1's API, implemented by the `icache` crate.
//!
//! Put it in place of the release with `[patch.crates-io]` (see `compat/README.md`); cranelift-jit
//! 0.137 and wasmtime 50 then compile unchanged. What changes against the release: on Linux
//! RISC-V `clear_cache` reaches every hart (the release flushes the calling hart only), and
//! `pipeline_flush_mt` synchronises the other threads on RISC-V and x86 too (the release does
//! nothing there). AArch64 was already right in 50.0.1 and stays so.
//!
//! Both functions return `wasmtime_core::error::Result`, as the release does everywhere; an OS
//! failure is a `std::io::Error` inside it (`downcast_ref::<std::io::Error>()` finds it).

use std::ffi::c_void;
use wasmtime_core::error::Result;

#[path = "../../common.rs"]
mod common;

/// Makes every thread of the process that may run the new code discard instructions it fetched
/// before (Linux: `membarrier` `PRIVATE_EXPEDITED_SYNC_CORE`, registered once; Windows:
/// `FlushProcessWriteBuffers`). Call it after [`clear_cache`] in a multi-threaded program.
///
/// # Errors
/// The OS error where the flush fails. Where the release did nothing (everywhere but Linux and
/// Android AArch64) a platform or kernel without any mechanism is not an error.
pub fn pipeline_flush_mt() -> Result<()> {
    common::pipeline_flush_mt().map_err(|e| std::io::Error::from(e).into())
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
    unsafe { common::clear_cache(ptr, len) }.map_err(|e| std::io::Error::from(e).into())
}
