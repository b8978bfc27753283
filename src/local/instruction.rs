//! One unprivileged instruction synchronises the calling core: AArch64 `isb`,
//! s390x `bcr 15,0`, LoongArch `ibar 0`, bare-metal RISC-V `fence.i` (`arch/`).

use crate::Error;

#[inline]
pub fn pipeline_flush_local() -> Result<(), Error> {
    crate::arch::local_sync();
    Ok(())
}
