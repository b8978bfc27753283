//! `clear_cache` and `cache_info`: one selection, by architecture and OS. Every file here
//! provides `clear_range` and `cache_info`, and `clear_ranges` unless the OS call walks exactly
//! the range it is given (then `clear_ranges` below calls `clear_range` per span), all with the
//! same signatures. Each `clear_ranges` returns `InvalidInput` for a batch with a wrapping range
//! before it touches anything (most through `checked`; the AArch64 walk checks as it coalesces).

use crate::plan::Span;
use crate::{Error, ErrorKind};

cfg_if::cfg_if! {
    // The OS before the architecture: on Windows and Apple the OS does the maintenance (and
    // `CTR_EL0` is never read), whatever the core.
    if #[cfg(windows)] {
        mod windows;
        pub use windows::{cache_info, clear_range};
    } else if #[cfg(target_vendor = "apple")] {
        mod apple;
        pub use apple::{cache_info, clear_range};
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
        pub use arm_linux::{cache_info, clear_range};
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

/// A batch as `clear_cache_many` and `clear_cache_slices` hand it to `clear_ranges`: its ranges
/// in order, `(start, len)`, not yet checked (empty ones are skipped, a wrapping one refused).
pub trait Batch: Iterator<Item = (usize, usize)> + Clone {
    /// Whether a range may wrap around the address space, so that `checked` must look.
    const MAY_WRAP: bool;
}

/// The ranges of a batch, and whether one may wrap: `true` for raw pointers and lengths
/// (`clear_cache_many`), `false` for slices (`clear_cache_slices`), since an allocation never
/// wraps.
#[derive(Clone)]
pub struct Ranges<I, const MAY_WRAP: bool>(pub I);

impl<I: Iterator<Item = (usize, usize)>, const MAY_WRAP: bool> Iterator for Ranges<I, MAY_WRAP> {
    type Item = (usize, usize);
    #[inline(always)]
    fn next(&mut self) -> Option<(usize, usize)> {
        self.0.next()
    }
}

impl<I: Iterator<Item = (usize, usize)> + Clone, const W: bool> Batch for Ranges<I, W> {
    const MAY_WRAP: bool = W;
}

/// The error of a batch with a range that wraps; nothing was touched.
const fn wrapping_batch() -> Error {
    Error::new(ErrorKind::InvalidInput, "clear_cache_many", 0)
}

/// The batch's spans once every range was checked, before anything is touched; or the error of
/// a range that wraps.
fn checked<B: Batch>(batch: B) -> Result<impl Iterator<Item = Span> + Clone, Error> {
    let span = |(start, len)| Span::new(start, len);
    if B::MAY_WRAP && batch.clone().any(|r| span(r).is_err()) {
        return Err(wrapping_batch());
    }
    Ok(batch.filter_map(move |r| span(r).ok().flatten()))
}

/// A batch where the OS call walks exactly the range it is given (Windows, Apple, 32-bit Arm
/// Linux): one `clear_range` per span, stopping at the first error.
///
/// # Safety
/// Every byte of every range is mapped readable (the contract of `clear_cache_many`).
#[cfg(any(
    windows,
    target_vendor = "apple",
    all(target_arch = "arm", any(target_os = "linux", target_os = "android"))
))]
pub unsafe fn clear_ranges<B: Batch>(batch: B) -> Result<(), Error> {
    for span in checked(batch)? {
        // SAFETY: forwarded from the caller.
        unsafe { clear_range(span)? };
    }
    Ok(())
}
