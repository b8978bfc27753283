//! A tiny JIT for the host: emits `fn(i32) -> i32 { x + k }` into an `mmap`ed page, makes it
//! coherent, runs it, patches `k` in place, runs it again, and prints what the crate sees.
//!
//! Run: `cargo run --example jit` (or under qemu-user for another architecture).

// The page handling below is written for Unix (`mmap`/`mprotect`); Windows users want
// `VirtualAlloc`/`VirtualProtect` (see tests/windows_jit.rs).
#[cfg(not(unix))]
fn main() {
    eprintln!("this example maps memory with mmap: run it on a Unix system");
    std::process::exit(2);
}

#[cfg(unix)]
use std::io;

#[cfg(unix)]
/// The machine code of `x + k` for the host architecture, returning in the ABI's register.
fn emit_add(k: i16) -> Vec<u8> {
    let k = k as i32;
    if cfg!(target_arch = "x86_64") {
        // lea eax, [rdi + k]; ret
        let mut c = vec![0x8d, 0x87];
        c.extend_from_slice(&k.to_le_bytes());
        c.push(0xc3);
        c
    } else if cfg!(target_arch = "aarch64") {
        // add w0, w0, #k (0..4095); ret
        words(&[0x1100_0000 | ((k as u32 & 0xfff) << 10), 0xd65f_03c0])
    } else if cfg!(target_arch = "riscv64") {
        // addiw a0, a0, k (-2048..2047); ret
        words(&[
            ((k as u32 & 0xfff) << 20) | (10 << 15) | (10 << 7) | 0x1b,
            0x0000_8067,
        ])
    } else if cfg!(target_arch = "arm") {
        // add r0, r0, #k (0..255); bx lr
        words(&[0xe280_0000 | (k as u32 & 0xff), 0xe12f_ff1e])
    } else if cfg!(target_arch = "s390x") {
        // ahi %r2, k; lgfr %r2, %r2 (an int is returned sign-extended); br %r14
        let mut c = vec![0xa7, 0x2a];
        c.extend_from_slice(&(k as i16).to_be_bytes());
        c.extend_from_slice(&[0xb9, 0x14, 0x00, 0x22, 0x07, 0xfe]);
        c
    } else {
        unimplemented!("no encoder for this architecture in the example")
    }
}

#[cfg(unix)]
fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter()
        .flat_map(|w| {
            if cfg!(target_endian = "big") {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            }
        })
        .collect()
}

#[cfg(unix)]
/// One page of anonymous memory, writable or executable, never both.
struct Page {
    ptr: *mut u8,
    len: usize,
}

#[cfg(unix)]
impl Page {
    fn new() -> io::Result<Page> {
        // SAFETY: sysconf has no preconditions.
        let len = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: an anonymous private mapping at an address of the kernel's choice.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Page {
            ptr: ptr.cast(),
            len,
        })
    }

    fn protect(&self, prot: libc::c_int) -> io::Result<()> {
        // SAFETY: the range is exactly this mapping.
        if unsafe { libc::mprotect(self.ptr.cast(), self.len, prot) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The publish sequence: write, make coherent, make executable, flush other threads.
    fn publish(&self, code: &[u8]) -> io::Result<()> {
        assert!(code.len() <= self.len);
        self.protect(libc::PROT_READ | libc::PROT_WRITE)?;
        // SAFETY: the page is writable and at least `code.len()` bytes long.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), self.ptr, code.len()) };
        // SAFETY: the bytes are mapped and readable.
        unsafe { icache::clear_cache(self.ptr.cast(), code.len()) }?;
        self.protect(libc::PROT_READ | libc::PROT_EXEC)?;
        icache::pipeline_flush_mt()?;
        Ok(())
    }

    /// Runs the page as `extern "C" fn(i32) -> i32`.
    ///
    /// # Safety
    /// The page holds a complete function of that signature for this architecture, published
    /// with [`Page::publish`]: running arbitrary bytes is undefined behaviour.
    unsafe fn call(&self, x: i32) -> i32 {
        // SAFETY: the caller guarantees a complete, published function of this signature.
        let f: extern "C" fn(i32) -> i32 = unsafe { core::mem::transmute(self.ptr) };
        f(x)
    }
}

#[cfg(unix)]
impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(unix)]
fn main() -> io::Result<()> {
    let info = icache::cache_info();
    println!("cache: {info:?}");
    match icache::prepare_pipeline_flush() {
        Ok(how) => println!("pipeline_flush_mt: {how:?}"),
        Err(e) => println!("pipeline_flush_mt: unavailable ({e})"),
    }

    let page = Page::new()?;
    page.publish(&emit_add(1))?;
    // SAFETY: `emit_add` wrote a complete `fn(i32) -> i32` and `publish` made it coherent.
    let first = unsafe { page.call(41) };
    println!("x + 1 at x = 41: {first}");

    page.publish(&emit_add(100))?;
    // SAFETY: as above, for the patched function.
    let second = unsafe { page.call(41) };
    println!("patched in place to x + 100, at x = 41: {second}");

    if (first, second) != (42, 141) {
        return Err(io::Error::other(format!(
            "stale code ran: got {first} and {second}"
        )));
    }
    println!("ok");
    Ok(())
}
