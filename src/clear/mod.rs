//! `clear_cache` and `cache_info`: one selection, by architecture and OS. Every file here
//! provides `clear_range`, `clear_ranges` and `cache_info`, with the same signatures.

cfg_if::cfg_if! {
    // The OS before the architecture: on Windows and Apple the OS does the maintenance (and
    // `CTR_EL0` is never read), whatever the core.
    if #[cfg(windows)] {
        mod windows;
        pub use windows::{cache_info, clear_range, clear_ranges};
    } else if #[cfg(target_vendor = "apple")] {
        mod apple;
        pub use apple::{cache_info, clear_range, clear_ranges};
    } else if #[cfg(all(
        target_arch = "aarch64",
        any(target_os = "linux", target_os = "android", target_os = "freebsd", target_os = "none")
    ))] {
        mod aarch64;
        pub use aarch64::{cache_info, clear_range, clear_ranges};
    } else if #[cfg(all(target_arch = "riscv64", any(target_os = "linux", target_os = "android")))] {
        mod riscv_linux;
        pub use riscv_linux::{cache_info, clear_range, clear_ranges};
        // `pipeline_flush_local` shares the remembered `prctl` answer.
        pub use riscv_linux::user_fence_i;
    } else if #[cfg(all(target_arch = "arm", any(target_os = "linux", target_os = "android")))] {
        mod arm_linux;
        pub use arm_linux::{cache_info, clear_range, clear_ranges};
    } else if #[cfg(any(all(target_arch = "riscv64", target_os = "none"), target_arch = "loongarch64"))] {
        mod local_barrier;
        pub use local_barrier::{cache_info, clear_range, clear_ranges};
    } else if #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "s390x"))] {
        mod coherent;
        pub use coherent::{cache_info, clear_range, clear_ranges};
    } else {
        mod unsupported;
        pub use unsupported::{cache_info, clear_range, clear_ranges};
    }
}

/// Calls `clear_range` once per span, stopping at the first error: for the platforms whose OS
/// call walks exactly the range it is given (Windows, Apple, 32-bit Arm Linux).
///
/// # Safety
/// As for `clear_range`, for every span.
#[cfg(any(
    windows,
    target_vendor = "apple",
    all(target_arch = "arm", any(target_os = "linux", target_os = "android"))
))]
#[inline]
unsafe fn each_range<I: Iterator<Item = crate::plan::Span>>(
    spans: I,
    clear_range: unsafe fn(crate::plan::Span) -> Result<(), crate::Error>,
) -> Result<(), crate::Error> {
    for span in spans {
        // SAFETY: forwarded from the caller.
        unsafe { clear_range(span)? };
    }
    Ok(())
}
