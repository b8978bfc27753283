//! `pipeline_flush_mt` and `prepare_pipeline_flush`: one selection, by OS. Every file here
//! provides both, with the same signatures.

cfg_if::cfg_if! {
    if #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))] {
        mod membarrier;
        pub use membarrier::{pipeline_flush_mt, prepare_pipeline_flush};
    } else if #[cfg(windows)] {
        mod windows;
        pub use windows::{pipeline_flush_mt, prepare_pipeline_flush};
    } else {
        mod unsupported;
        pub use unsupported::{pipeline_flush_mt, prepare_pipeline_flush};
    }
}
