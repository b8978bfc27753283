//! The raw system calls, one file per OS, each wrapped once: a wrapper returns what the kernel
//! gave, `Ok(value)` or `Err(errno)`, through the one conversion in `errno.rs`. The decisions
//! (which call, what a refusal means) are made by their users in `src/flush/` and `src/clear/`.

cfg_if::cfg_if! {
    if #[cfg(any(target_os = "linux", target_os = "android"))] {
        mod errno;
        mod linux;
        pub use linux::*;
        use linux::errno;
    } else if #[cfg(target_os = "freebsd")] {
        mod errno;
        mod freebsd;
        pub use freebsd::*;
        use freebsd::errno;
    }
}
