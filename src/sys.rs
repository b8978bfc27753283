//! The one dispatch point: which mechanism each platform uses. Every platform provides
//! `clear_range`, `clear_ranges`, `cache_info`, `pipeline_flush_mt` and `prepare_pipeline_flush`.

#[allow(unused_imports)]
use crate::{plan, CacheInfo, Error, Maintenance, PipelineFlush};

/// Calls the platform's `clear_range` once per non-empty range, stopping at the first error: for
/// platforms whose OS call walks exactly the range it is given (Windows, Apple, 32-bit Arm).
///
/// # Safety
/// As for `clear_range`, for every range.
#[allow(dead_code)]
#[inline]
unsafe fn each_range<I: Iterator<Item = (usize, usize)>>(
    ranges: I,
    clear_range: unsafe fn(usize, usize, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    for (start, len) in ranges {
        if let Some(Ok(last)) = plan::last_byte(start, len) {
            // SAFETY: forwarded from the caller.
            unsafe { clear_range(start, len, last)? };
        }
    }
    Ok(())
}

cfg_if::cfg_if! {
    if #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))] {
        pub use crate::membarrier::{pipeline_flush_mt, prepare_pipeline_flush};
    } else if #[cfg(windows)] {
        pub use crate::windows::{pipeline_flush_mt, prepare_pipeline_flush};
    } else if #[cfg(target_vendor = "apple")] {
        pub use crate::apple::{pipeline_flush_mt, prepare_pipeline_flush};
    } else {
        // Bare metal (and anything unknown): without an OS the crate cannot reach other cores.
        // Each core that will run the new code must synchronise itself (`isb` on AArch64,
        // `fence.i` on RISC-V) after it observes the publication.
        pub fn pipeline_flush_mt() -> Result<(), Error> {
            Err(Error::unsupported("pipeline_flush_mt", 0))
        }
        pub fn prepare_pipeline_flush() -> Result<PipelineFlush, Error> {
            Err(Error::unsupported("pipeline_flush_mt", 0))
        }
    }
}

cfg_if::cfg_if! {
    if #[cfg(windows)] {
        // Before the architectures: Windows on AArch64 does its maintenance in the kernel.
        pub use crate::windows::{cache_info, clear_range};

        /// One `FlushInstructionCache` per range: the kernel flushes only what it is given.
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(ranges: I) -> Result<(), Error> {
            // SAFETY: forwarded from `clear_cache_many`.
            unsafe { each_range(ranges, clear_range) }
        }
    } else if #[cfg(target_vendor = "apple")] {
        // Before the architectures: never read `CTR_EL0` on Apple.
        pub use crate::apple::{cache_info, clear_range};

        /// One `sys_icache_invalidate` per range: libSystem walks only what it is given.
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(ranges: I) -> Result<(), Error> {
            // SAFETY: forwarded from `clear_cache_many`.
            unsafe { each_range(ranges, clear_range) }
        }
    } else if #[cfg(all(
        target_arch = "aarch64",
        any(target_os = "linux", target_os = "android", target_os = "freebsd", target_os = "none")
    ))] {
        use crate::arch;

        cfg_if::cfg_if! {
            if #[cfg(target_os = "none")] {
                /// Bare metal: the code runs at EL1 or above, where the read never traps, and no
                /// OS migrates it between cores, so the running core's own value is read every
                /// time (cores of a big.LITTLE system may differ).
                #[inline(always)]
                fn with_ctr_el0<R>(f: impl FnOnce(plan::CtrEl0) -> R) -> R {
                    f(plan::CtrEl0(arch::read_ctr_el0()))
                }
            } else {
                use core::sync::atomic::{AtomicU64, Ordering};

                /// `CTR_EL0`, read once per process: the read can trap to the kernel. Safe to keep
                /// because Linux reports the system-wide safe (smallest) line sizes when cores
                /// differ (`arch/arm64/kernel/cpufeature.c`). FreeBSD lets EL0 read the register
                /// directly (`SCTLR_EL1.UCT`, `sys/arm64/arm64/locore.S`). 0 means "not read
                /// yet": bit 31 of the register is always 1.
                static CTR_EL0: AtomicU64 = AtomicU64::new(0);

                /// Runs `f` with the cached value. The first use in the process runs all of `f`
                /// out of line, after the read: the common path then makes no call and needs no
                /// stack frame (a call in its middle would give it one).
                #[inline(always)]
                fn with_ctr_el0<R>(f: impl FnOnce(plan::CtrEl0) -> R) -> R {
                    match CTR_EL0.load(Ordering::Relaxed) {
                        0 => read_ctr_el0(f),
                        ctr => f(plan::CtrEl0(ctr)),
                    }
                }

                #[cold]
                #[inline(never)]
                fn read_ctr_el0<R>(f: impl FnOnce(plan::CtrEl0) -> R) -> R {
                    let ctr = arch::read_ctr_el0();
                    CTR_EL0.store(ctr, Ordering::Relaxed);
                    f(plan::CtrEl0(ctr))
                }
            }
        }

        /// The whole Arm ARM sequence for a set of ranges, barriers once.
        ///
        /// # Safety
        /// No range wraps; every byte is mapped readable.
        #[inline(always)]
        unsafe fn sync<I: Iterator<Item = (usize, usize)> + Clone>(ranges: I, ctr: plan::CtrEl0) {
            let plans = ranges.filter_map(move |(start, len)| plan::RangePlan::new(start, len, ctr));
            let mut any = false;
            for p in plans.clone() {
                any = true;
                if let Some(w) = p.clean {
                    // SAFETY: the caller guarantees the lines are mapped; a walk has count >= 1.
                    unsafe { arch::dc_cvau_lines(w.first, w.count - 1, w.line_log2) };
                }
            }
            if !any {
                return;
            }
            // Always: it also orders the stores of the code before the invalidations.
            arch::dsb_ish();
            if !ctr.dic() {
                for p in plans {
                    if let Some(w) = p.invalidate {
                        // SAFETY: as above.
                        unsafe { arch::ic_ivau_lines(w.first, w.count - 1, w.line_log2) };
                    }
                }
                arch::dsb_ish();
            }
            arch::isb();
        }

        #[inline]
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_range(start: usize, len: usize, _last: usize) -> Result<(), Error> {
            // SAFETY: forwarded from `clear_cache`. The iterator is made inside the closure so
            // that only two registers' worth is captured.
            with_ctr_el0(move |ctr| unsafe { sync(core::iter::once((start, len)), ctr) });
            Ok(())
        }

        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(ranges: I) -> Result<(), Error> {
            // SAFETY: forwarded from `clear_cache_many`.
            with_ctr_el0(move |ctr| unsafe { sync(ranges, ctr) });
            Ok(())
        }

        pub fn cache_info() -> CacheInfo {
            with_ctr_el0(|ctr| CacheInfo {
                maintenance: Maintenance::Instructions,
                dcache_line: Some(ctr.dcache_line()),
                icache_line: Some(ctr.icache_line()),
                idc: ctr.idc(),
                dic: ctr.dic(),
            })
        }
    } else if #[cfg(all(target_arch = "riscv64", any(target_os = "linux", target_os = "android")))] {
        /// One `riscv_flush_icache(start, end, 0)`: flags 0 reaches every hart running the
        /// process (wasmtime's flags 1 is the caller's hart only).
        #[inline]
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_range(start: usize, _len: usize, last: usize) -> Result<(), Error> {
            crate::linux::riscv_flush_icache(start, last.saturating_add(1), 0)
                .map_err(|e| Error::os("riscv_flush_icache(flags = 0)", e))
        }

        /// One system call for the whole batch: the kernel flushes every hart whatever the
        /// range, which it takes as a hint only.
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(ranges: I) -> Result<(), Error> {
            let mut bounds: Option<(usize, usize)> = None;
            for (start, len) in ranges {
                if let Some(Ok(last)) = plan::last_byte(start, len) {
                    let (lo, hi) = bounds.unwrap_or((start, last));
                    bounds = Some((lo.min(start), hi.max(last)));
                }
            }
            match bounds {
                None => Ok(()),
                // SAFETY: forwarded from `clear_cache_many`.
                Some((lo, hi)) => unsafe { clear_range(lo, hi - lo + 1, hi) },
            }
        }

        pub fn cache_info() -> CacheInfo {
            CacheInfo { maintenance: Maintenance::SystemCall, dcache_line: None, icache_line: None, idc: false, dic: false }
        }
    } else if #[cfg(all(target_arch = "arm", any(target_os = "linux", target_os = "android")))] {
        /// The kernel's `cacheflush` does the clean, invalidate and barriers for the range.
        #[inline]
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_range(start: usize, _len: usize, last: usize) -> Result<(), Error> {
            crate::linux::arm_cacheflush(start, last.saturating_add(1))
                .map_err(|e| Error::os("cacheflush", e))
        }

        /// One `cacheflush` per range: the kernel walks only the range it is given.
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(ranges: I) -> Result<(), Error> {
            // SAFETY: forwarded from `clear_cache_many`.
            unsafe { each_range(ranges, clear_range) }
        }

        pub fn cache_info() -> CacheInfo {
            CacheInfo { maintenance: Maintenance::SystemCall, dcache_line: None, icache_line: None, idc: false, dic: false }
        }
    } else if #[cfg(any(all(target_arch = "riscv64", target_os = "none"), target_arch = "loongarch64"))] {
        // One unranged barrier on the calling core does the work:
        // * bare-metal RISC-V: `fence.i`, on the calling hart only. Every other hart that will run
        //   the code must execute its own `fence.i` after it observes the publication.
        // * LoongArch: the instruction caches are kept coherent with the data caches in hardware,
        //   on every core; only this core's instruction hazard remains (Linux's
        //   `arch/loongarch/mm/cache.c` says as much, and its `flush_icache_range` sends no IPI). `dbar 0` completes the stores of the code,
        //   `ibar 0` makes this core's later fetches see them.
        #[cfg(target_arch = "riscv64")]
        use crate::arch::fence_i as local_barrier;
        #[cfg(target_arch = "loongarch64")]
        use crate::arch::dbar_ibar as local_barrier;

        #[inline]
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_range(_start: usize, _len: usize, _last: usize) -> Result<(), Error> {
            local_barrier();
            Ok(())
        }

        /// One barrier covers every range: it is not ranged.
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(mut ranges: I) -> Result<(), Error> {
            if ranges.any(|(_, len)| len != 0) {
                local_barrier();
            }
            Ok(())
        }

        pub fn cache_info() -> CacheInfo {
            let coherent = cfg!(target_arch = "loongarch64");
            CacheInfo { maintenance: Maintenance::Instructions, dcache_line: None, icache_line: None, idc: coherent, dic: coherent }
        }
    } else if #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "s390x"))] {
        // Instruction fetch snoops the data caches (Intel SDM vol. 3A "Self-modifying code";
        // z/Architecture Principles of Operation, "Storage-operand fetch references"): nothing
        // to do, and nothing left once inlined.
        #[inline(always)]
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_range(_start: usize, _len: usize, _last: usize) -> Result<(), Error> {
            Ok(())
        }

        #[inline(always)]
        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(_ranges: I) -> Result<(), Error> {
            Ok(())
        }

        pub fn cache_info() -> CacheInfo {
            CacheInfo { maintenance: Maintenance::None, dcache_line: None, icache_line: None, idc: true, dic: true }
        }
    } else {
        /// No known mechanism: say so rather than pretend.
        ///
        /// # Safety
        /// No range wraps, and every byte of every range is mapped readable (the contract of
        /// `clear_cache` and `clear_cache_many`, checked or forwarded by their callers).
        pub unsafe fn clear_range(_start: usize, _len: usize, _last: usize) -> Result<(), Error> {
            Err(Error::unsupported("clear_cache", 0))
        }

        pub unsafe fn clear_ranges<I: Iterator<Item = (usize, usize)> + Clone>(mut ranges: I) -> Result<(), Error> {
            if ranges.any(|(_, len)| len != 0) {
                Err(Error::unsupported("clear_cache_many", 0))
            } else {
                Ok(())
            }
        }

        pub fn cache_info() -> CacheInfo {
            CacheInfo { maintenance: Maintenance::Unsupported, dcache_line: None, icache_line: None, idc: false, dic: false }
        }
    }
}
