//! Shared helpers for the integration tests: hand-written machine-code encoders for every
//! architecture the crate supports, an RAII executable mapping, and the atomic store that
//! patches a jump while other threads run it.
//!
//! Every encoder is a pure function compiled on every host, so `tests/jit.rs` checks all of
//! them against known encodings wherever the suite runs; [`native`] picks the one this test
//! binary executes.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use core::ffi::c_void;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// x86-64 (Intel SDM vol. 2).
pub mod x86_64 {
    /// `mov eax, imm32` (B8+rd id); `ret` (C3).
    pub fn ret_imm(value: u16) -> Vec<u8> {
        let mut code = vec![0xb8];
        code.extend_from_slice(&u32::from(value).to_le_bytes());
        code.push(0xc3);
        code
    }

    /// `nop` (90).
    pub const NOP: &[u8] = &[0x90];

    /// `jmp rel32` (E9 cd, relative to the next instruction), padded to 8 bytes with the 3-byte
    /// `nop dword [rax]` (0F 1F 00) so that the whole patch is one aligned 8-byte store.
    pub fn jump(from: usize, to: usize) -> Vec<u8> {
        let rel = (to as i64) - (from as i64 + 5);
        let rel = i32::try_from(rel).expect("x86-64 jmp rel32 out of range");
        let mut code = vec![0xe9];
        code.extend_from_slice(&rel.to_le_bytes());
        code.extend_from_slice(&[0x0f, 0x1f, 0x00]);
        code
    }
}

/// AArch64 (Arm ARM, A64 base instructions). Instructions are 32-bit little-endian words.
pub mod aarch64 {
    /// `ret` (`ret x30`).
    pub const RET: u32 = 0xd65f_03c0;

    /// `nop` (hint #0), little-endian.
    pub const NOP: &[u8] = &0xd503_201f_u32.to_le_bytes();

    /// `movz w0, #value`; `ret`.
    pub fn ret_imm(value: u16) -> Vec<u8> {
        words_le(&[0x5280_0000 | (u32::from(value) << 5), RET])
    }

    /// `b to`: imm26 counts words from the branch itself (range +-128 MiB). `B` is one of the
    /// instructions the Arm ARM allows to be modified while another core executes it.
    pub fn jump(from: usize, to: usize) -> Vec<u8> {
        let off = (to as i64) - (from as i64);
        assert!(
            off % 4 == 0 && (-(1 << 27)..(1 << 27)).contains(&off),
            "b out of range"
        );
        words_le(&[0x1400_0000 | ((off >> 2) as u32 & 0x03ff_ffff)])
    }

    pub(crate) fn words_le(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// RISC-V RV64GC (Unprivileged ISA, RV32I/RV64I base). 32-bit little-endian words.
pub mod riscv64 {
    use super::aarch64::words_le;

    const A0: u32 = 10;

    fn i_type(imm12: i32, rs1: u32, funct3: u32, rd: u32, opcode: u32) -> u32 {
        ((imm12 as u32 & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode
    }

    /// `ret` = `jalr x0, 0(ra)`.
    pub const RET: u32 = 0x0000_8067;

    /// `nop` = `addi x0, x0, 0`, little-endian.
    pub const NOP: &[u8] = &0x0000_0013_u32.to_le_bytes();

    /// `addi a0, zero, value` when it fits 12 signed bits, else `lui a0, hi` + `addi a0, a0,
    /// lo`; then `ret`. So small and large values also differ in length (8 or 12 bytes).
    pub fn ret_imm(value: u16) -> Vec<u8> {
        let v = i32::from(value);
        if v < 2048 {
            words_le(&[i_type(v, 0, 0, A0, 0x13), RET])
        } else {
            // `lo` is sign-extended by `addi`, so round `hi` up when bit 11 is set.
            let hi = (v + 0x800) >> 12;
            let lo = v - (hi << 12);
            let lui = ((hi as u32) << 12) | (A0 << 7) | 0x37;
            words_le(&[lui, i_type(lo, A0, 0, A0, 0x13), RET])
        }
    }

    /// `jal x0, to` (J-type, +-1 MiB), one 32-bit word: with the A extension an aligned word
    /// store is single-copy atomic, so a concurrent fetch sees the old or the new jump.
    pub fn jump(from: usize, to: usize) -> Vec<u8> {
        let off = (to as i64) - (from as i64);
        assert!(
            off % 2 == 0 && (-(1 << 20)..(1 << 20)).contains(&off),
            "jal out of range"
        );
        let o = off as u32;
        let imm = (((o >> 20) & 1) << 31)
            | (((o >> 1) & 0x3ff) << 21)
            | (((o >> 11) & 1) << 20)
            | (((o >> 12) & 0xff) << 12);
        words_le(&[imm | 0x6f])
    }
}

/// 32-bit Arm, A32 instruction set (ARMv7 Arm ARM). 32-bit little-endian words; the armv7
/// Linux target calls a function pointer with an even address in ARM state (`blx reg`).
pub mod arm {
    use super::aarch64::words_le;

    /// `bx lr`.
    pub const BX_LR: u32 = 0xe12f_ff1e;

    /// `nop` (ARMv6K+ hint, encoding A1), little-endian.
    pub const NOP: &[u8] = &0xe320_f000_u32.to_le_bytes();

    /// `movw r0, #value` (ARMv6T2+, encoding A2); `bx lr`.
    pub fn ret_imm(value: u16) -> Vec<u8> {
        let v = u32::from(value);
        words_le(&[0xe300_0000 | ((v >> 12) << 16) | (v & 0xfff), BX_LR])
    }

    /// `b to` (cond AL): imm24 counts words from the branch's address + 8 (+-32 MiB). `B` is in
    /// the ARMv7 list of instructions that may be concurrently modified and executed.
    pub fn jump(from: usize, to: usize) -> Vec<u8> {
        let off = (to as i64) - (from as i64 + 8);
        assert!(
            off % 4 == 0 && (-(1 << 25)..(1 << 25)).contains(&off),
            "b out of range"
        );
        words_le(&[0xea00_0000 | ((off >> 2) as u32 & 0x00ff_ffff)])
    }
}

/// s390x (z/Architecture Principles of Operation). Big-endian, 2-byte aligned instructions.
pub mod s390x {
    /// `nopr` = `bcr 0, %r0`: a branch that is never taken.
    pub const NOP: &[u8] = &[0x07, 0x00];

    /// `lghi %r2, value` (A7x9, sign-extends to 64 bits) for values that stay positive, else
    /// `llill %r2, value` (A5xF, zero-extends); then `br %r14` (07FE, `bcr 15, %r14`).
    pub fn ret_imm(value: u16) -> Vec<u8> {
        let op = if value <= 0x7fff {
            [0xa7, 0x29]
        } else {
            [0xa5, 0x2f]
        };
        let mut code = op.to_vec();
        code.extend_from_slice(&value.to_be_bytes());
        code.extend_from_slice(&[0x07, 0xfe]);
        code
    }

    /// `brc 15, to` (`j`; A7F4, signed halfword offset from the instruction itself, +-64 KiB):
    /// 4 bytes, patched as one aligned 32-bit store.
    pub fn jump(from: usize, to: usize) -> Vec<u8> {
        let off = (to as i64) - (from as i64);
        assert!(
            off % 2 == 0 && (-(1 << 16)..(1 << 16)).contains(&off),
            "brc out of range"
        );
        let mut code = vec![0xa7, 0xf4];
        code.extend_from_slice(&((off >> 1) as i16).to_be_bytes());
        code
    }
}

/// The encoders and placement rules of the architecture this test binary runs on.
pub mod native {
    #[cfg(target_arch = "aarch64")]
    pub use super::aarch64::{jump, ret_imm, NOP};
    #[cfg(target_arch = "arm")]
    pub use super::arm::{jump, ret_imm, NOP};
    #[cfg(target_arch = "riscv64")]
    pub use super::riscv64::{jump, ret_imm, NOP};
    #[cfg(target_arch = "s390x")]
    pub use super::s390x::{jump, ret_imm, NOP};
    #[cfg(target_arch = "x86_64")]
    pub use super::x86_64::{jump, ret_imm, NOP};

    /// `ret_imm(value)` preceded by at least `pad` bytes of `nop`s, so that the instruction that
    /// decides the result lies cache lines away from the entry: a stale line anywhere in between
    /// would run old bytes (zeros in a fresh slot: an illegal instruction on most machines).
    pub fn sled_ret_imm(pad: usize, value: u16) -> Vec<u8> {
        let mut code: Vec<u8> = NOP
            .iter()
            .copied()
            .cycle()
            .take(pad.div_ceil(NOP.len()) * NOP.len())
            .collect();
        code.extend(ret_imm(value));
        code
    }

    /// The smallest legal alignment of an instruction: x86 none; riscv64gc 2 (the C extension
    /// makes IALIGN 16); s390x 2; A64 and A32 4.
    pub const CODE_ALIGN: usize = if cfg!(target_arch = "x86_64") {
        1
    } else if cfg!(any(target_arch = "riscv64", target_arch = "s390x")) {
        2
    } else {
        4
    };

    /// Size and alignment of a patchable jump: one naturally aligned atomic store.
    pub const PATCH_LEN: usize = if cfg!(target_arch = "x86_64") { 8 } else { 4 };

    /// Room for the longest `ret_imm` on any architecture (12 bytes on RISC-V).
    pub const MAX_RET_IMM_LEN: usize = 12;
}

/// The page size of this process.
pub fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).expect("sysconf(_SC_PAGESIZE) failed")
}

/// A private anonymous mapping, unmapped on drop, whose protection the tests switch between
/// RW, RX and RWX.
pub struct CodeMap {
    ptr: *mut u8,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory owned by this value; sharing it between threads is as
// safe as sharing a `*mut u8`, and the tests synchronise their accesses themselves (atomics).
unsafe impl Send for CodeMap {}
// SAFETY: as above; `&CodeMap` only hands out raw pointers and atomic patch stores.
unsafe impl Sync for CodeMap {}

impl CodeMap {
    /// Maps at least `len` bytes (rounded up to whole pages), readable and writable.
    pub fn new(len: usize) -> io::Result<Self> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        Self::map(len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
    }

    /// Maps the first `len` bytes (whole pages) of the file `fd`, shared, with `prot`: one
    /// view of a file that other views alias.
    fn map_shared(fd: libc::c_int, len: usize, prot: libc::c_int) -> io::Result<Self> {
        Self::map(len, prot, libc::MAP_SHARED, fd)
    }

    fn map(len: usize, prot: libc::c_int, flags: libc::c_int, fd: libc::c_int) -> io::Result<Self> {
        let page = page_size();
        let len = len.max(1).div_ceil(page) * page;
        // SAFETY: without MAP_FIXED the kernel places the mapping where nothing is mapped, so
        // no memory of this process changes; the new range belongs to this value alone.
        let ptr = unsafe { libc::mmap(core::ptr::null_mut(), len, prot, flags, fd, 0) };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(CodeMap {
            ptr: ptr.cast(),
            len,
            writable: prot & libc::PROT_WRITE != 0,
        })
    }

    fn protect(&mut self, prot: libc::c_int) -> io::Result<()> {
        // SAFETY: the range is exactly this value's own mapping. `&mut self` means no slice of
        // it is borrowed; code running from it on other threads is the caller's business (the
        // multi-threaded tests use RWX and never change it).
        if unsafe { libc::mprotect(self.ptr.cast(), self.len, prot) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.writable = prot & libc::PROT_WRITE != 0;
        Ok(())
    }

    /// Readable and writable, not executable.
    pub fn make_rw(&mut self) -> io::Result<()> {
        self.protect(libc::PROT_READ | libc::PROT_WRITE)
    }

    /// Readable and executable, not writable.
    pub fn make_rx(&mut self) -> io::Result<()> {
        self.protect(libc::PROT_READ | libc::PROT_EXEC)
    }

    /// Readable, writable and executable (for code patched while it runs).
    pub fn make_rwx(&mut self) -> io::Result<()> {
        self.protect(libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    pub fn ptr_at(&self, offset: usize) -> *const c_void {
        assert!(offset <= self.len);
        self.ptr.wrapping_add(offset).cast()
    }

    /// The bytes `[offset, offset + len)` as a slice (the mapping is always readable).
    pub fn slice(&self, offset: usize, len: usize) -> &[u8] {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked), mapped and readable for as long as `self` lives; the
        // tests only write through `&mut self` or atomics, never while such a slice is held on
        // the same bytes.
        unsafe { core::slice::from_raw_parts(self.ptr.add(offset), len) }
    }

    /// Copies `bytes` to `offset`. The mapping must be writable.
    pub fn write(&mut self, offset: usize, bytes: &[u8]) {
        assert!(self.writable, "CodeMap::write on a read-only mapping");
        // SAFETY: writable (checked); `&mut self` excludes any slice and any other writer; the
        // bounds are checked inside.
        unsafe { self.write_unpublished(offset, bytes) };
    }

    /// Copies `bytes` to `offset` through `&self`, for code no thread is running or can reach
    /// yet (a fresh slot in a shared RWX mapping).
    ///
    /// # Safety
    /// The mapping is writable; no other thread reads or executes these bytes until the caller
    /// publishes them; no slice of them is alive.
    pub unsafe fn write_unpublished(&self, offset: usize, bytes: &[u8]) {
        assert!(offset
            .checked_add(bytes.len())
            .is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked); exclusivity and writability from the caller.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len())
        };
    }

    /// Replaces the patchable jump at `offset` with `bytes` in one atomic store (4 or 8 bytes,
    /// naturally aligned), so a thread fetching it concurrently sees the old or the new
    /// instruction, never a mix.
    ///
    /// # Safety
    /// The mapping is writable, and the bytes at `offset` are only ever written by this function.
    pub unsafe fn patch(&self, offset: usize, bytes: &[u8]) {
        assert!(offset
            .checked_add(bytes.len())
            .is_some_and(|end| end <= self.len));
        let dst = self.ptr.wrapping_add(offset);
        assert_eq!(
            dst as usize % bytes.len(),
            0,
            "patch must be naturally aligned"
        );
        match bytes.len() {
            4 => {
                let word = u32::from_ne_bytes(bytes.try_into().unwrap());
                // SAFETY: aligned, in bounds, writable (caller), and only accessed atomically.
                unsafe { AtomicU32::from_ptr(dst.cast()) }.store(word, Ordering::Release);
            }
            8 => {
                let word = u64::from_ne_bytes(bytes.try_into().unwrap());
                // SAFETY: as above.
                unsafe { AtomicU64::from_ptr(dst.cast()) }.store(word, Ordering::Release);
            }
            n => panic!("no atomic patch of {n} bytes"),
        }
    }

    /// The code at `offset` as a function returning `u32`.
    ///
    /// # Safety
    /// `offset` holds a complete function for this architecture whose bytes were made coherent
    /// with instruction fetch, and the mapping is executable whenever the result is called.
    pub unsafe fn func(&self, offset: usize) -> extern "C" fn() -> u32 {
        assert!(offset < self.len);
        // SAFETY: a function pointer is an address; the caller vouches for what is there.
        unsafe {
            core::mem::transmute::<*const c_void, extern "C" fn() -> u32>(self.ptr_at(offset))
        }
    }
}

impl Drop for CodeMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly this value's own mapping; nothing borrows it any more.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A W^X JIT's dual mapping: one `memfd` mapped twice, shared, so that the code is written
/// through `rw` (never executable) and runs from `rx` (never writable), at another address.
/// Dropping it unmaps both views and closes the file.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub struct DualMap {
    pub rw: CodeMap,
    pub rx: CodeMap,
    _file: std::os::fd::OwnedFd,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl DualMap {
    /// At least `len` bytes (whole pages) of a fresh, zeroed memory file, viewed twice.
    pub fn new(len: usize) -> io::Result<Self> {
        use std::os::fd::{FromRawFd, OwnedFd};
        let page = page_size();
        let len = len.max(1).div_ceil(page) * page;
        // SAFETY: the name is a NUL-terminated string; the call only creates a file.
        let fd = unsafe { libc::memfd_create(c"icache-dual-map".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by memfd_create and nothing else owns it. `file` closes
        // it on every return; `fd` stays valid while `file` lives.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // SAFETY: sizes the file this function owns; touches no memory.
        if unsafe { libc::ftruncate(fd, size) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let rw = CodeMap::map_shared(fd, len, libc::PROT_READ | libc::PROT_WRITE)?;
        let rx = CodeMap::map_shared(fd, len, libc::PROT_READ | libc::PROT_EXEC)?;
        Ok(DualMap {
            rw,
            rx,
            _file: file,
        })
    }

    pub fn len(&self) -> usize {
        self.rx.len()
    }
}

/// Whether this binary runs under a user-mode emulator such as qemu-user: the kernel's own
/// architecture (`/proc/sys/kernel/arch`, which the emulator passes through while it answers
/// `uname` for the guest) is then not this binary's. False where the kernel has no such file.
/// A 32-bit Arm binary on an AArch64 kernel also counts as emulated.
pub fn user_mode_emulator() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/arch")
        .is_ok_and(|arch| !arch.trim().starts_with(std::env::consts::ARCH))
}

/// True when the environment says this kernel or sandbox has no `membarrier`, so
/// `pipeline_flush_mt` returning `Unsupported` is expected rather than a failure.
pub fn expect_no_membarrier() -> bool {
    std::env::var_os("ICACHE_EXPECT_NO_MEMBARRIER").is_some()
}

/// `pipeline_flush_mt`, failing loudly on `Unsupported` unless `ICACHE_EXPECT_NO_MEMBARRIER` is
/// set. Returns whether a flush was made.
pub fn flush_mt_or_fail() -> bool {
    match icache::pipeline_flush_mt() {
        Ok(()) => true,
        Err(e) if e.kind() == icache::ErrorKind::Unsupported && expect_no_membarrier() => false,
        Err(e) => panic!(
            "pipeline_flush_mt failed: {e} (set ICACHE_EXPECT_NO_MEMBARRIER if this kernel or \
             sandbox really has no membarrier)"
        ),
    }
}

/// The CPUs this thread may run on (`sched_getaffinity`), in increasing order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set, a valid value.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which the kernel fills.
    let r = unsafe { libc::sched_getaffinity(0, core::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`; returns whether the kernel accepted it.
pub fn pin_to(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is an empty set, a valid value.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `cpu` comes from `allowed_cpus`, so it is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the pointer and size describe `set`, which the kernel only reads.
    unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) == 0 }
}
