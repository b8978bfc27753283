//! The assembly of each architecture (`arch/`, one file each, assembly only): one selection.
//! `src/clear/` and `src/local/` use it as `crate::arch`.

cfg_if::cfg_if! {
    if #[cfg(target_arch = "aarch64")] {
        #[path = "../arch/aarch64.rs"]
        mod imp;
        pub use imp::*;
    } else if #[cfg(any(target_arch = "x86", target_arch = "x86_64"))] {
        #[path = "../arch/x86.rs"]
        mod imp;
        pub use imp::*;
    } else if #[cfg(all(target_arch = "arm", any(target_os = "linux", target_os = "android")))] {
        #[path = "../arch/arm.rs"]
        mod imp;
        pub use imp::*;
    } else if #[cfg(target_arch = "s390x")] {
        #[path = "../arch/s390x.rs"]
        mod imp;
        pub use imp::*;
    } else if #[cfg(target_arch = "riscv64")] {
        #[path = "../arch/riscv64.rs"]
        mod imp;
        pub use imp::*;
    } else if #[cfg(target_arch = "loongarch64")] {
        #[path = "../arch/loongarch64.rs"]
        mod imp;
        pub use imp::*;
    }
}
