//! Linux RISC-V: a user `fence.i`, valid only once the kernel keeps it valid across migration
//! (the `prctl` that `src/clear/riscv_linux.rs` enables once per process and explains). Where
//! the kernel refused, this reports `Unsupported` with the kernel's errno.

use crate::{Error, ErrorKind};

#[inline]
pub fn pipeline_flush_local() -> Result<(), Error> {
    match crate::clear::user_fence_i() {
        Ok(()) => {
            crate::arch::fence_i();
            Ok(())
        }
        Err(errno) => Err(Error::new(
            ErrorKind::Unsupported,
            "pipeline_flush_local",
            errno,
        )),
    }
}
