//! Prints, from inside a guest booted by `.ci/kernels.sh`, what `icache` detects and
//! chooses there. Exits non-zero when the cross-thread flush cannot be prepared or run,
//! since every supported Linux guest offers one.

use std::process::ExitCode;

#[cfg(target_arch = "aarch64")]
fn ctr_el0() -> u64 {
    let value: u64;
    // SAFETY: reading CTR_EL0 only copies a register; Linux lets EL0 read it (or traps
    // and emulates the read). No memory is touched, so `nomem` is correct here: this is
    // an ID register read, not cache maintenance.
    unsafe {
        std::arch::asm!("mrs {}, ctr_el0", out(reg) value, options(nomem, nostack, preserves_flags));
    }
    value
}

fn main() -> ExitCode {
    #[cfg(target_arch = "aarch64")]
    println!("report: CTR_EL0 = {:#x}", ctr_el0());
    println!("report: cache_info = {:?}", icache::cache_info());
    let mut ok = true;
    match icache::prepare_pipeline_flush() {
        Ok(m) => println!("report: prepare_pipeline_flush = {m:?}"),
        Err(e) => {
            println!("report: prepare_pipeline_flush failed: {e}");
            ok = false;
        }
    }
    match icache::pipeline_flush_mt() {
        Ok(()) => println!("report: pipeline_flush_mt = ok"),
        Err(e) => {
            println!("report: pipeline_flush_mt failed: {e}");
            ok = false;
        }
    }
    let code = [0u8; 64];
    match icache::clear_cache_slice(&code) {
        Ok(()) => println!("report: clear_cache_slice(64 bytes) = ok"),
        Err(e) => {
            println!("report: clear_cache_slice failed: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
