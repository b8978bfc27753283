//! x86 and x86-64: serialising the calling core's instruction stream.
//!
//! The caches are coherent with instruction fetch, but the Intel SDM (vol. 3A, "Handling Self-
//! and Cross-Modifying Code") asks the processor that runs modified code to execute a
//! serialising instruction after it observes the modification. `serialize` does only that where
//! CPUID.07H.0H:EDX[14] reports it; `cpuid` is serialising on every x86 (and exits to the
//! hypervisor in a virtual machine, which is why it is the fallback).
//!
//! Neither block is `nomem`: a serialising instruction must stay after the loads that observed
//! the new code, so to the compiler it may read and write any memory.

use core::arch::asm;

/// `cpuid` with `eax = leaf`, `ecx = subleaf`; returns `(eax, ecx, edx)`. `ebx` is saved and
/// restored around it (LLVM reserves it), and its value is not needed here.
#[inline(always)]
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32) {
    let (eax, ecx, edx): (u32, u32, u32);
    // SAFETY: `cpuid` exists on every x86-64 and on every x86 Rust supports; it reads no memory
    // and changes no flags. The scratch register keeps `rbx`/`ebx` intact.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        asm!("mov {tmp:r}, rbx", "cpuid", "mov rbx, {tmp:r}", tmp = out(reg) _,
             inout("eax") leaf => eax, inout("ecx") subleaf => ecx, out("edx") edx,
             options(nostack, preserves_flags))
    };
    // SAFETY: as above.
    #[cfg(target_arch = "x86")]
    unsafe {
        asm!("mov {tmp:e}, ebx", "cpuid", "mov ebx, {tmp:e}", tmp = out(reg) _,
             inout("eax") leaf => eax, inout("ecx") subleaf => ecx, out("edx") edx,
             options(nostack, preserves_flags))
    };
    (eax, ecx, edx)
}

/// `serialize` (encoded as bytes: older assemblers lack the mnemonic).
///
/// # Safety
/// The CPU implements `serialize` (CPUID.07H.0H:EDX[14]); elsewhere it raises `#UD`.
#[inline(always)]
pub unsafe fn serialize() {
    // SAFETY: the caller checked CPUID; `serialize` changes no register, flag or memory.
    unsafe { asm!(".byte 0x0f, 0x01, 0xe8", options(nostack, preserves_flags)) };
}
