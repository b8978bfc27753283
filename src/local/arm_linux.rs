//! 32-bit Arm Linux: `isb` where the core is ARMv7 or later, as the kernel reports in the
//! `AT_PLATFORM` auxiliary vector entry (`"v7l"`, `"v8l"`, ...; `arch/arm/kernel/setup.c`).
//! ARMv6 and older have no user-mode `isb`: `Unsupported` there. Decided once and remembered.

use crate::{Error, ErrorKind};
use core::sync::atomic::{AtomicU8, Ordering};

/// Whether the core has a user-mode `isb`: 0 until the kernel was asked, then 1 + the answer.
static HAS_ISB: AtomicU8 = AtomicU8::new(0);

/// The architecture version in a platform string `v<N>...`, if it has that shape.
fn platform_version(platform: &[u8]) -> Option<u32> {
    let digits = platform.strip_prefix(b"v")?;
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 3 {
        return None;
    }
    Some(
        digits[..len]
            .iter()
            .fold(0, |v, d| v * 10 + u32::from(d - b'0')),
    )
}

/// Reads `AT_PLATFORM` once; racing first calls read the same answer.
#[cold]
fn ask_kernel() -> bool {
    // SAFETY: `getauxval` only reads the auxiliary vector the kernel gave the process.
    let p = unsafe { libc::getauxval(libc::AT_PLATFORM) } as *const libc::c_char;
    // SAFETY: a non-zero `AT_PLATFORM` points to a NUL-terminated string the kernel copied onto
    // the initial stack, alive for the whole process.
    let platform = (!p.is_null()).then(|| unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes());
    let has_isb = matches!(platform.and_then(platform_version), Some(v) if v >= 7);
    HAS_ISB.store(1 + u8::from(has_isb), Ordering::Relaxed);
    has_isb
}

#[inline]
pub fn pipeline_flush_local() -> Result<(), Error> {
    let has_isb = match HAS_ISB.load(Ordering::Relaxed) {
        0 => ask_kernel(),
        known => known == 2,
    };
    if !has_isb {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "pipeline_flush_local",
            0,
        ));
    }
    // SAFETY: the kernel reports an ARMv7 or later core.
    unsafe { crate::arch::isb_v7() };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::platform_version;

    #[test]
    fn reads_the_version_of_platform_strings() {
        assert_eq!(platform_version(b"v7l"), Some(7));
        assert_eq!(platform_version(b"v8l"), Some(8));
        assert_eq!(platform_version(b"v6l"), Some(6));
        assert_eq!(platform_version(b"v10b"), Some(10));
        assert_eq!(platform_version(b"aarch64"), None);
        assert_eq!(platform_version(b"v"), None);
        assert_eq!(platform_version(b""), None);
    }
}
