//! Linux RISC-V: a user `fence.i`, valid only once the kernel keeps it valid across migration.
//!
//! `fence.i` acts on the hart that runs it: a thread that migrates afterwards to a hart that
//! last ran another thread of this process may fetch stale bytes there, because Linux does not
//! flush a hart when it switches between two threads of one process. Since Linux 6.10,
//! `prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, PR_RISCV_CTX_SW_FENCEI_ON, PR_RISCV_SCOPE_PER_PROCESS)`
//! makes the kernel run `fence.i` on the hart a thread of this process lands on
//! (`arch/riscv/mm/context.c`). The first call enables it for the whole process and remembers
//! the answer, refusal included: older kernels and seccomp filters refuse, and then this call
//! reports `Unsupported` with the kernel's errno.

use crate::{Error, ErrorKind};
use core::sync::atomic::{AtomicI32, Ordering};

/// 0: not asked yet; 1: enabled; negative: refused with that errno.
static STATE: AtomicI32 = AtomicI32::new(0);

#[cold]
fn enable() -> i32 {
    let state = match crate::os::riscv_enable_user_fence_i() {
        Ok(()) => 1,
        Err(errno) => -errno.max(1),
    };
    STATE.store(state, Ordering::Relaxed);
    state
}

#[inline]
pub fn pipeline_flush_local() -> Result<(), Error> {
    let state = match STATE.load(Ordering::Relaxed) {
        0 => enable(),
        s => s,
    };
    if state < 0 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "pipeline_flush_local",
            -state,
        ));
    }
    crate::arch::fence_i();
    Ok(())
}
