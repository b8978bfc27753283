//! `pipeline_flush_local`: the calling thread's own context synchronisation, one selection.
//! Every file here provides `pipeline_flush_local() -> Result<(), Error>`.

cfg_if::cfg_if! {
    if #[cfg(all(target_arch = "riscv64", any(target_os = "linux", target_os = "android")))] {
        mod riscv_linux;
        pub use riscv_linux::pipeline_flush_local;
    } else if #[cfg(all(target_arch = "arm", any(target_os = "linux", target_os = "android")))] {
        mod arm_linux;
        pub use arm_linux::pipeline_flush_local;
    } else if #[cfg(any(target_arch = "x86", target_arch = "x86_64"))] {
        mod x86;
        pub use x86::pipeline_flush_local;
    } else if #[cfg(any(
        target_arch = "aarch64",
        target_arch = "s390x",
        target_arch = "loongarch64",
        all(target_arch = "riscv64", target_os = "none"),
    ))] {
        mod instruction;
        pub use instruction::pipeline_flush_local;
    } else {
        mod unsupported;
        pub use unsupported::pipeline_flush_local;
    }
}
