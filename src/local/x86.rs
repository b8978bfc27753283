//! x86: `serialize` where the CPU has it, else `cpuid` (Intel SDM vol. 3A, "Handling Self- and
//! Cross-Modifying Code": the executing processor runs a serialising instruction after it
//! observes the modification). Which one is decided by the first call and remembered.

use crate::arch;
use crate::Error;
use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const SERIALIZE: u8 = 1;
const CPUID: u8 = 2;

static HOW: AtomicU8 = AtomicU8::new(UNKNOWN);

/// CPUID.07H.0H:EDX[14], read once. Racing first calls read the same answer.
#[cold]
fn detect() -> u8 {
    let (max_leaf, _, _) = arch::cpuid(0, 0);
    let has_serialize = max_leaf >= 7 && arch::cpuid(7, 0).2 & (1 << 14) != 0;
    let how = if has_serialize { SERIALIZE } else { CPUID };
    HOW.store(how, Ordering::Relaxed);
    how
}

#[inline]
pub fn pipeline_flush_local() -> Result<(), Error> {
    let how = match HOW.load(Ordering::Relaxed) {
        UNKNOWN => detect(),
        how => how,
    };
    if how == SERIALIZE {
        // SAFETY: CPUID reported `serialize` on this machine.
        unsafe { arch::serialize() };
    } else {
        // `cpuid` itself is the serialising instruction; its answer is not needed.
        let _ = arch::cpuid(0, 0);
    }
    Ok(())
}
