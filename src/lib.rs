//! Make freshly written machine code safe to execute.
//!
//! A JIT compiler writes instructions through the data side of the machine and then jumps to
//! them through the instruction side. On AArch64, RISC-V, 32-bit Arm and most non-x86 machines
//! the two are not coherent: until the program cleans the data cache, invalidates the
//! instruction cache and synchronises the pipeline, the CPU may run the bytes that were there
//! before. This crate does that correctly on every platform it supports, with one maintenance
//! instruction per cache line and one set of barriers per call or batch (BENCHMARKS.md in the
//! repository measures it against the other crates).
//!
//! # The publish sequence
//!
//! 1. Write the code through a writable mapping.
//! 2. [`clear_cache`] (or [`clear_cache_slice`], [`clear_cache_many`]) on the bytes written.
//! 3. Make the memory executable (`mprotect`, `VirtualProtect`), if it was not.
//! 4. [`pipeline_flush_mt`], so that every *other* thread discards instructions it fetched
//!    before. A program that only ever runs the code on the thread that wrote it can skip this.
//! 5. Publish the entry point to other threads (a release store).
//!
//! ```
//! # fn main() -> Result<(), icache::Error> {
//! let code: Vec<u8> = vec![0xc3]; // stands for a buffer of freshly written instructions
//! icache::clear_cache_slice(&code)?;
//! // ... make it executable ...
//! # #[cfg(any(target_os = "linux", target_os = "android"))]
//! icache::pipeline_flush_mt()?;
//! # Ok(()) }
//! ```
//!
//! `clear_cache` and `pipeline_flush_mt` have the names and shapes of wasmtime's
//! `jit-icache-coherence`. For callers that use `?` or `.expect()` on their results, switching
//! is a change of import, since [`Error`] converts into `std::io::Error`; code that matches on
//! wasmtime's `io::Error` directly needs `.into()` or a look at [`Error::kind`].
//!
//! # What happens where
//!
//! | platform | `clear_cache` | `pipeline_flush_mt` |
//! |---|---|---|
//! | Linux/Android AArch64 | `dc cvau` per D-line (unless `CTR_EL0.IDC`), `dsb ish`, `ic ivau` per I-line (unless `DIC`), `dsb ish`, `isb` | `membarrier` `PRIVATE_EXPEDITED_SYNC_CORE`, with fallbacks |
//! | Linux RISC-V | `fence.i` (this thread), once the kernel accepted `prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, ON, PER_PROCESS)` (Linux 6.10+; asked once per process); where it refuses, `riscv_flush_icache(start, end, 0)`: every hart | as AArch64, falling back to `riscv_flush_icache(0, 0, 0)` |
//! | Linux 32-bit Arm | the `cacheflush` syscall | as AArch64 |
//! | Linux LoongArch64 | `dbar 0; ibar 0`: the hardware keeps the caches coherent, this removes the core's instruction hazard | `membarrier` `SYNC_CORE` only (no fallback is known to be enough) |
//! | x86, x86-64, s390x | nothing: the caches are coherent | `membarrier` on Linux (the SDM's cross-modifying-code rule) |
//! | FreeBSD AArch64 | as Linux AArch64 (FreeBSD lets EL0 read `CTR_EL0` and clean/invalidate) | `membarrier` (FreeBSD 14.1+; [`ErrorKind::Unsupported`] with `ENOSYS` before, checked without calling it) |
//! | FreeBSD x86-64 | nothing | as FreeBSD AArch64 |
//! | Windows (x86-64, AArch64) | `FlushInstructionCache(GetCurrentProcess(), ptr, len)` per range | `FlushProcessWriteBuffers()`: an IPI to every processor running the process; cannot fail |
//! | macOS, iOS (AArch64, x86-64) | libSystem's `sys_icache_invalidate(ptr, len)`; `CTR_EL0` is never read | [`ErrorKind::Unsupported`]: Darwin has no such call (see below) |
//! | bare metal AArch64 (`target_os = "none"`) | as Linux AArch64, reading the running core's `CTR_EL0` each time | [`ErrorKind::Unsupported`]: each core runs its own `isb` |
//! | bare metal RISC-V | `fence.i`: **this hart only** | [`ErrorKind::Unsupported`]: each hart runs its own `fence.i` |
//! | anything else (e.g. powerpc64) | [`ErrorKind::Unsupported`] | `membarrier` on Linux |
//!
//! Without an OS the crate cannot reach other cores: after publishing, every other core that will
//! run the code must execute `isb` (AArch64) or `fence.i` (RISC-V) itself, after it has observed
//! the publication (for example after an acquire load of the entry point).
//!
//! ## Apple: `MAP_JIT` and `pthread_jit_write_protect_np`
//!
//! On Apple silicon a JIT maps its code with `MAP_JIT` and flips the *calling thread's* view of all
//! such memory between writable and executable. The crate's call goes after writing, while or
//! after switching back to executable; other threads that will run the code must each execute an
//! `isb` after they observe the new entry point, since Darwin offers no cross-thread flush.
//!
//! ```no_run
//! # #[cfg(all(target_vendor = "apple", target_arch = "aarch64"))] {
//! // macOS on AArch64, with the `libc` crate.
//! let len = 16 * 1024;
//! let map = unsafe {
//!     libc::mmap(core::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
//!                libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_JIT, -1, 0)
//! };
//! assert_ne!(map, libc::MAP_FAILED);
//! let code: [u32; 2] = [0x5280_0540, 0xd65f_03c0]; // mov w0, #42; ret
//! unsafe {
//!     libc::pthread_jit_write_protect_np(0); // this thread: MAP_JIT memory writable
//!     core::ptr::copy_nonoverlapping(code.as_ptr(), map.cast::<u32>(), code.len());
//!     libc::pthread_jit_write_protect_np(1); // this thread: executable again
//!     icache::clear_cache(map, 8)?; // sys_icache_invalidate
//!     let f: extern "C" fn() -> u32 = core::mem::transmute(map);
//!     assert_eq!(f(), 42);
//! }
//! # }
//! # Ok::<(), icache::Error>(())
//! ```
//!
//! The module `icache::plan` (the pure range and line planning) is public only for the project's
//! tests and fuzz targets; it is hidden from these docs and not part of the stable API.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

use core::ffi::c_void;

mod error;
#[doc(hidden)]
pub mod plan;

pub use error::{Error, ErrorKind};

mod arch;
mod clear;
mod flush;
mod local;
mod os;

/// How this platform makes written code visible to instruction fetch.
///
/// ```
/// let m = icache::cache_info().maintenance;
/// # #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
/// assert_eq!(m, icache::Maintenance::Coherent);
/// # #[cfg(windows)]
/// assert_eq!(m, icache::Maintenance::SystemCall); // FlushInstructionCache, on every Windows
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Maintenance {
    /// The caches and the pipeline stay coherent with instruction fetch (x86 and s390x on Linux
    /// and FreeBSD): [`clear_cache`] does nothing.
    Coherent,
    /// The caches are coherent, but the core may still run instructions it fetched before:
    /// [`clear_cache`] runs one barrier on the calling core (LoongArch `dbar 0; ibar 0`).
    Barrier,
    /// User-space instructions do the work: AArch64 `dc cvau`, `ic ivau` and barriers, or
    /// RISC-V `fence.i` (bare metal, and Linux 6.10+ once the `prctl` is on).
    Instructions,
    /// The kernel does it: [`clear_cache`] makes a system call (Linux RISC-V
    /// `riscv_flush_icache`, 32-bit Arm `cacheflush`, Windows `FlushInstructionCache`).
    SystemCall,
    /// A function of the OS's own library does it (Apple's `sys_icache_invalidate`); how, the
    /// crate does not see.
    LibraryCall,
    /// No known mechanism: [`clear_cache`] returns [`ErrorKind::Unsupported`].
    Unsupported,
}

/// The level 1 instruction cache's indexing and tagging policy (AArch64 `CTR_EL0.L1Ip`).
///
/// It matters when the same memory is mapped twice (W^X: written through a writable alias, run
/// through an executable one): `ic ivau` invalidates by virtual address, and with a VIPT
/// instruction cache, which Linux always treats as aliasing, only the lines of the address
/// given are sure to go. So [`clear_cache`] must be given the **executable** alias (which must be
/// readable: at EL0 `ic ivau` needs read permission). PIPT caches do not alias.
///
/// ```
/// use icache::L1Icache;
/// if let Some(policy) = icache::cache_info().l1_icache {
///     println!("L1 I-cache: {policy:?}, aliasing: {}", policy == L1Icache::Vipt);
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum L1Icache {
    /// Virtually indexed, physically tagged (aliasing, as Linux treats it).
    Vipt,
    /// Physically indexed, physically tagged.
    Pipt,
    /// VMID-aware PIPT (ARMv8.0 to 8.6; reserved since).
    Vpipt,
    /// ASID-tagged virtually indexed, virtually tagged (ARMv8.0; reserved since).
    Aivivt,
}

/// A description of the running machine's caches as this crate sees and uses them. A field is
/// `None` where the crate does not know the answer (the OS does the work, or the architecture
/// has no such register), never a guess.
///
/// ```
/// let info = icache::cache_info();
/// if let Some(line) = info.icache_line {
///     assert!(line.is_power_of_two() && line >= 4);
/// }
/// if info.idc == Some(true) {
///     println!("no D-cache clean needed");
/// }
/// println!("{info:?}");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CacheInfo {
    /// What [`clear_cache`] does here.
    pub maintenance: Maintenance,
    /// The smallest D-cache line in bytes (AArch64 `CTR_EL0.DminLine`), where the crate walks
    /// lines itself.
    pub dcache_line: Option<usize>,
    /// The smallest I-cache line in bytes (AArch64 `CTR_EL0.IminLine`), where the crate walks
    /// lines itself.
    pub icache_line: Option<usize>,
    /// Whether cleaning the D-cache can be skipped (AArch64 `CTR_EL0.IDC`; `Some(true)` where
    /// the caches are coherent; `None` where unknown).
    pub idc: Option<bool>,
    /// Whether invalidating the I-cache can be skipped (AArch64 `CTR_EL0.DIC`; `Some(true)`
    /// where the caches are coherent; `None` where unknown).
    pub dic: Option<bool>,
    /// The L1 instruction cache's policy (AArch64 `CTR_EL0.L1Ip`), where the crate reads it.
    pub l1_icache: Option<L1Icache>,
}

/// The mechanism [`pipeline_flush_mt`] uses, chosen once per process.
///
/// ```
/// # #[cfg(any(target_os = "linux", target_os = "android"))]
/// match icache::prepare_pipeline_flush() {
///     Ok(m) => println!("cross-thread flush through {m:?}"),
///     Err(e) => println!("no cross-thread flush here: {e}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PipelineFlush {
    /// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)`: the exact guarantee.
    MembarrierSyncCore,
    /// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: an IPI to every CPU running the process,
    /// whose exception return synchronises the context (Arm, x86). Used when the kernel lacks
    /// `SYNC_CORE`.
    MembarrierPrivateExpedited,
    /// `membarrier(MEMBARRIER_CMD_GLOBAL)`: waits until every CPU has passed through the kernel.
    /// Slow and the weakest; used only when nothing better is allowed.
    MembarrierGlobal,
    /// RISC-V `riscv_flush_icache(0, 0, 0)`: `fence.i` on every hart running the process.
    RiscvFlushIcache,
    /// Windows `FlushProcessWriteBuffers()`: an inter-processor interrupt to every processor
    /// running a thread of the process, whose return synchronises the context (as for
    /// [`MembarrierPrivateExpedited`](Self::MembarrierPrivateExpedited)). It returns nothing and
    /// cannot fail.
    FlushProcessWriteBuffers,
}

/// Makes `len` bytes from `ptr` coherent between data and instruction side: after it returns,
/// the calling thread (after its own `isb`, which this call issues) fetches what was written.
/// Other threads also need [`pipeline_flush_mt`] (or [`pipeline_flush_local`] on each).
///
/// On Linux RISC-V the first call asks the kernel to keep a user `fence.i` valid across thread
/// migration (`prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, ON, PER_PROCESS)`, Linux 6.10+), a setting of
/// the whole process that costs a `fence.i` per migration; where it agrees, this call is one
/// `fence.i` and no system call, else one `riscv_flush_icache` that reaches every hart.
///
/// `len == 0` succeeds and touches nothing, whatever `ptr` is. A range that wraps around the
/// address space returns [`ErrorKind::InvalidInput`] and touches nothing.
///
/// **Two mappings of the same memory** (W^X: written through a writable alias, run through an
/// executable one): pass the address of the alias that will be *executed*. Instruction caches
/// may be indexed by virtual address ([`L1Icache::Vipt`]), so invalidating through the writable
/// alias can leave stale lines for the executable one. That alias must be readable (`PROT_READ |
/// PROT_EXEC`): AArch64 `ic ivau` at EL0 and Apple's `sys_icache_invalidate` fault otherwise.
///
/// Async-signal-safe: no locks, no allocation, no thread-local storage. A signal handler may
/// patch code and call it. Where it makes a system call that fails, it sets `errno` as any
/// system call does.
///
/// # Safety
/// Every byte of the range must be mapped and readable by this process: the cache-maintenance
/// instructions fault otherwise. The memory need not be writable or executable.
///
/// # Errors
/// [`ErrorKind::InvalidInput`] for a wrapping range; [`ErrorKind::Os`] if the system call that
/// does the work on this platform fails; [`ErrorKind::Unsupported`] where no mechanism is known.
///
/// ```
/// let code = [0u8; 64];
/// unsafe { icache::clear_cache(code.as_ptr().cast(), code.len()) }?;
/// # Ok::<(), icache::Error>(())
/// ```
#[inline]
pub unsafe fn clear_cache(ptr: *const c_void, len: usize) -> Result<(), Error> {
    match plan::Span::new(ptr as usize, len) {
        Ok(None) => Ok(()),
        Err(plan::WrapsAround) => Err(Error::new(ErrorKind::InvalidInput, "clear_cache", 0)),
        // SAFETY: the caller guarantees the range is mapped and readable.
        Ok(Some(span)) => unsafe { clear::clear_range(span) },
    }
}

/// [`clear_cache`] for a byte slice. Safe: a slice is always mapped and readable.
///
/// ```
/// let code = vec![0xc0, 0x03, 0x5f, 0xd6]; // AArch64 `ret`, in memory order (little-endian)
/// icache::clear_cache_slice(&code)?;
/// # Ok::<(), icache::Error>(())
/// ```
#[inline]
pub fn clear_cache_slice(code: &[u8]) -> Result<(), Error> {
    // SAFETY: a slice's bytes are mapped and readable for its lifetime.
    unsafe { clear_cache(code.as_ptr().cast(), code.len()) }
}

/// Makes many ranges coherent with a single set of barriers: on AArch64 every D-line of every
/// range is cleaned, then one `dsb ish`, every I-line invalidated, one `dsb ish`, one `isb`;
/// on Linux RISC-V one `fence.i` or one system call covers the batch. Allocates nothing.
///
/// On AArch64, ranges that follow each other in memory (functions written back to back into a
/// code buffer) are walked as one, and a line two neighbouring ranges share is maintained once:
/// pass the ranges in address order where you can.
///
/// Empty ranges are skipped. If any range wraps, nothing is touched and
/// [`ErrorKind::InvalidInput`] is returned.
///
/// # Safety
/// As for [`clear_cache`], for every range.
///
/// ```
/// let a = [0u8; 300];
/// let b = [0u8; 40];
/// unsafe { icache::clear_cache_many(&[(a.as_ptr().cast(), a.len()), (b.as_ptr().cast(), b.len())]) }?;
/// # Ok::<(), icache::Error>(())
/// ```
#[inline]
pub unsafe fn clear_cache_many(ranges: &[(*const c_void, usize)]) -> Result<(), Error> {
    // Checked by the platform's code, which refuses a wrapping range before touching anything.
    let batch = ranges.iter().map(|&(ptr, len)| (ptr as usize, len));
    // SAFETY: the caller guarantees every range is mapped and readable.
    unsafe { clear::clear_ranges(clear::Ranges::<_, true>(batch)) }
}

/// [`clear_cache_many`] for byte slices. Safe: slices are always mapped and readable.
///
/// ```
/// let functions: Vec<Vec<u8>> = vec![vec![0; 256]; 10];
/// let slices: Vec<&[u8]> = functions.iter().map(|f| f.as_slice()).collect();
/// icache::clear_cache_slices(&slices)?;
/// # Ok::<(), icache::Error>(())
/// ```
#[inline]
pub fn clear_cache_slices(code: &[&[u8]]) -> Result<(), Error> {
    // Slices never wrap (an allocation stays below `isize::MAX` bytes): only empty ones drop out.
    let batch = code.iter().map(|s| (s.as_ptr() as usize, s.len()));
    // SAFETY: a slice's bytes are mapped and readable for its lifetime.
    unsafe { clear::clear_ranges(clear::Ranges::<_, false>(batch)) }
}

/// Makes every other thread of the process discard instructions it has already fetched, so
/// that code made coherent with [`clear_cache`] is what it runs next.
///
/// On Linux this is `membarrier(PRIVATE_EXPEDITED_SYNC_CORE)`: the first call registers it
/// (which can take milliseconds; [`prepare_pipeline_flush`] pays that at start-up), and every
/// later call is exactly one system call. Where the kernel lacks it, the strongest fallback is
/// chosen once and remembered (see [`PipelineFlush`]).
///
/// Async-signal-safe, like [`clear_cache`]: a signal handler that patches code may call it
/// (the first call registers, so call [`prepare_pipeline_flush`] at start-up). A child made by
/// `fork` keeps the parent's registration (Linux copies it with the memory map) and the choice
/// the crate remembered; `exec` drops both.
///
/// # Errors
/// [`ErrorKind::Unsupported`] (with the last OS error) when the kernel or a seccomp filter
/// allows no mechanism; [`ErrorKind::Os`] if the chosen mechanism fails later. Never reports a
/// flush it did not make.
///
/// ```
/// # #[cfg(any(target_os = "linux", target_os = "android"))]
/// icache::pipeline_flush_mt()?;
/// # Ok::<(), icache::Error>(())
/// ```
#[inline]
pub fn pipeline_flush_mt() -> Result<(), Error> {
    flush::pipeline_flush_mt()
}

/// Makes the *calling* thread discard instructions it fetched before: the reader-side
/// alternative to [`pipeline_flush_mt`], with no interrupt to other cores.
///
/// A thread calls it after it observes that new code was published (after an acquire load of
/// the entry point, or of a flag the writer set with a release store after [`clear_cache`]) and
/// before it runs that code. This is the Arm ARM's own protocol for other cores (an `isb` on
/// each after it observes the update). A program may use it *instead of* `pipeline_flush_mt`
/// only if **every** thread that can run the new code calls it after observing the
/// publication and before running it: a thread that reaches the code another way (a patched
/// jump it was already executing through, a stale pointer) is not covered.
///
/// | platform | instruction |
/// |---|---|
/// | AArch64 | `isb` |
/// | Linux 32-bit Arm | `isb` where the kernel reports an ARMv7 or later core (`AT_PLATFORM`); [`ErrorKind::Unsupported`] on older ones |
/// | Linux RISC-V | `fence.i`, once the crate enabled `prctl(PR_RISCV_SET_ICACHE_FLUSH_CTX, ON, PER_PROCESS)` for the process (Linux 6.10+; the same request as `clear_cache`'s), so that the kernel keeps it valid when the thread migrates |
/// | bare-metal RISC-V | `fence.i` |
/// | x86, x86-64 | `serialize` where CPUID reports it, else `cpuid` (the SDM's cross-modifying-code rule) |
/// | s390x | `bcr 15,0` (serialisation) |
/// | LoongArch | `ibar 0` |
/// | others (PowerPC) | [`ErrorKind::Unsupported`] |
///
/// On Linux RISC-V the first call of this or of [`clear_cache`] changes a per-process setting:
/// from then on the kernel runs `fence.i` on the hart any thread of the process migrates to (a
/// small cost per migration).
///
/// Async-signal-safe, like [`clear_cache`].
///
/// # Errors
/// [`ErrorKind::Unsupported`] where no instruction is known, and on Linux RISC-V when the
/// kernel refuses the `prctl` (before 6.10, `EINVAL`; or a seccomp filter): the refusal is
/// remembered, and its errno is in [`Error::raw_os_error`]. Use [`pipeline_flush_mt`] then.
///
/// ```
/// use std::sync::atomic::{AtomicPtr, Ordering};
/// static ENTRY: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
/// // Reader thread: observe the publication, synchronise, then run.
/// let entry = ENTRY.load(Ordering::Acquire);
/// if !entry.is_null() {
///     icache::pipeline_flush_local()?;
///     // ... call the code at `entry` ...
/// }
/// # Ok::<(), icache::Error>(())
/// ```
#[inline]
pub fn pipeline_flush_local() -> Result<(), Error> {
    local::pipeline_flush_local()
}

/// Chooses and registers the mechanism of [`pipeline_flush_mt`] now, so that the first real
/// flush does not pay for it; returns the mechanism. Later calls return the remembered choice.
///
/// ```
/// # #[cfg(any(target_os = "linux", target_os = "android"))]
/// let how = icache::prepare_pipeline_flush()?;
/// # Ok::<(), icache::Error>(())
/// ```
pub fn prepare_pipeline_flush() -> Result<PipelineFlush, Error> {
    flush::prepare_pipeline_flush()
}

/// Describes the caches of the running machine as this crate uses them. On AArch64 Linux the
/// first call reads `CTR_EL0` (once per process, shared with [`clear_cache`]).
///
/// ```
/// let info = icache::cache_info();
/// println!("{:?}: D-line {:?}, I-line {:?}", info.maintenance, info.dcache_line, info.icache_line);
/// ```
pub fn cache_info() -> CacheInfo {
    clear::cache_info()
}
