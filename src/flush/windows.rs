//! Windows: `FlushProcessWriteBuffers()` makes every processor that runs a thread of the
//! process take an inter-processor interrupt, whose return is a context-synchronisation event on
//! AArch64 and serialising on x86 (`iretq`), the same argument as Linux's
//! `membarrier(PRIVATE_EXPEDITED)`; threads not running pass through the kernel's context switch
//! before they run again. It returns nothing and has no failure mode: once it returns, the
//! interrupts have been taken, so `Ok(())` reports a flush that really happened. .NET's runtime
//! uses it for the same purpose.

use crate::{Error, PipelineFlush};
use windows_sys::Win32::System::Threading::FlushProcessWriteBuffers;

/// `FlushProcessWriteBuffers`: cannot fail, see the module documentation.
#[inline]
pub fn pipeline_flush_mt() -> Result<(), Error> {
    // SAFETY: takes no arguments and touches no memory of ours.
    unsafe { FlushProcessWriteBuffers() };
    Ok(())
}

/// Nothing to register on Windows.
pub fn prepare_pipeline_flush() -> Result<PipelineFlush, Error> {
    Ok(PipelineFlush::FlushProcessWriteBuffers)
}
