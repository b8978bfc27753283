//! Wrappers whose machine code `.ci/disasm.sh` inspects: each is a separately compiled function
//! of a crate that uses `icache`, as a JIT would, so what they compile to is what users get.
//! `.ci/disasm.sh` compiles this library alone into one object (one codegen unit).

use core::ffi::c_void;

/// `clear_cache` with the result ignored.
///
/// # Safety
/// As for `icache::clear_cache`.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn icache_disasm_discard(p: *const c_void, l: usize) {
    // SAFETY: forwarded to the caller.
    let _ = unsafe { icache::clear_cache(p, l) };
}

/// `clear_cache` with the result handed to the caller.
///
/// # Safety
/// As for `icache::clear_cache`.
#[no_mangle]
#[inline(never)]
pub unsafe fn icache_disasm_result(p: *const c_void, l: usize) -> Result<(), icache::Error> {
    // SAFETY: forwarded to the caller.
    unsafe { icache::clear_cache(p, l) }
}

/// `clear_cache_slice` with the result ignored.
#[no_mangle]
#[inline(never)]
pub fn icache_disasm_slice_discard(code: &[u8]) {
    let _ = icache::clear_cache_slice(code);
}

/// `clear_cache_many` with the result ignored.
///
/// # Safety
/// As for `icache::clear_cache_many`.
#[no_mangle]
#[inline(never)]
pub unsafe fn icache_disasm_many_discard(ranges: &[(*const c_void, usize)]) {
    // SAFETY: forwarded to the caller.
    let _ = unsafe { icache::clear_cache_many(ranges) };
}
