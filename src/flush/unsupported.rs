//! No cross-thread flush the crate can stand behind: bare metal (without an OS the crate cannot
//! reach other cores), Apple platforms and anything unknown. Each thread or core that will run
//! the new code synchronises itself after it observes the publication instead
//! ([`pipeline_flush_local`](crate::pipeline_flush_local)).
//!
//! Apple: Darwin has no `membarrier` and no `FlushProcessWriteBuffers`. The one known stand-in, used by .NET's
//! runtime (its PAL's `FlushProcessWriteBuffers`) and HotSpot on macOS, walks every thread of the
//! task (`task_threads`) and asks the kernel for its registers
//! (`thread_get_register_pointer_values`); both describe it as forcing each thread to emit a
//! *memory* barrier. Nothing Apple documents says it synchronises instruction fetch, it costs
//! Mach calls per thread, and it cannot be tested here, so this crate does not claim it.

use crate::{Error, ErrorKind, PipelineFlush};

pub fn pipeline_flush_mt() -> Result<(), Error> {
    Err(Error::new(ErrorKind::Unsupported, "pipeline_flush_mt", 0))
}

pub fn prepare_pipeline_flush() -> Result<PipelineFlush, Error> {
    Err(Error::new(ErrorKind::Unsupported, "pipeline_flush_mt", 0))
}
