//! A real code generator as the client: dynasm-rs assembles functions with loops, conditional
//! branches, local calls, a call into Rust through a register and a jump table into plain byte
//! buffers (`VecAssembler`, so this test owns the mapping), and this crate publishes them the way
//! a JIT must: write through an RW mapping, `clear_cache_many` / `clear_cache`, `mprotect` RX,
//! `pipeline_flush_mt`. Then the code is re-assembled with a different constant, rewritten in
//! place, published again and called again.
//!
//! Architectures: x86-64 (`.arch x64`), AArch64 (`.arch aarch64`) and RISC-V RV64
//! (`.arch riscv64`, base I instructions only, no compressed ones), the three backends of
//! dynasmrt 5.1 that match a target this crate supports. On 32-bit Arm and s390x, for which
//! dynasm-rs has no backend, this file compiles to an empty test binary.
//!
//! What it proves depends on where it runs. On hardware whose instruction cache does not snoop
//! stores (AArch64, RISC-V), a missed line in the published ranges (one of them straddles a page
//! boundary) would run the previous round's bytes and the checks on the new constant would fail.
//! Under qemu-user it cannot: the emulator retranslates any written code page, so there the test
//! proves that dynasm's output for this target is legal, that the calls across the two ranges
//! and the jump table land where they should, and that the publish calls accept these ranges and
//! succeed on every configured cache line size (QEMU_CPU=max, cortex-a53, a64fx).
#![cfg(all(
    unix,
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
))]

// `common::native` re-exports encoders this file does not use.
#[allow(unused_imports)]
#[path = "../../common/mod.rs"]
mod common;

use common::{flush_mt_or_fail, page_size, CodeMap};
use core::ffi::c_void;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

#[cfg(target_arch = "x86_64")]
type Reloc = dynasmrt::x64::X64Relocation;
#[cfg(target_arch = "aarch64")]
type Reloc = dynasmrt::aarch64::Aarch64Relocation;
#[cfg(target_arch = "riscv64")]
type Reloc = dynasmrt::riscv::RiscvRelocation;

/// What the generated `caller` calls through a register, so the result depends on a real call
/// out of generated code (argument, return value, stack alignment, callee-saved registers).
extern "C" fn rust_mix(x: u64) -> u64 {
    x.wrapping_mul(3).wrapping_add(7)
}

/// The values the jump table's cases return, before the round's constant is added.
const CASES: [u64; 4] = [100, 200, 300, 400];

/// One assembled piece of code and the offsets of its entry points within it.
struct Assembled {
    code: Vec<u8>,
    entries: Vec<usize>,
}

/// Module A: `sum(n)` = 1 + 2 + ... + n (a forward branch for n = 0 and a backward loop), and
/// `caller(n)` = `rust_mix(sum(n)) + k`, which calls `sum` by label (`call`/`bl`/`jal`) and
/// `rust_mix` through a register loaded from a literal in the code. `base` is the address the
/// code will run at.
fn module_a(base: usize, k: u32) -> Assembled {
    let mut ops: VecAssembler<Reloc> = VecAssembler::new(base);
    let target = rust_mix as extern "C" fn(u64) -> u64 as usize as u64;

    #[cfg(target_arch = "x86_64")]
    let entries = {
        let sum = ops.offset().0;
        dynasm!(ops
            ; .arch x64
            ; ->sum:
            ; xor eax, eax
            ; test rdi, rdi
            ; jz >done
            ; repeat:
            ; add rax, rdi
            ; sub rdi, 1
            ; jnz <repeat
            ; done:
            ; ret
        );
        let caller = ops.offset().0;
        dynasm!(ops
            ; .arch x64
            // Entry leaves rsp 8 below a 16-byte boundary; one push restores the alignment the
            // System V ABI requires at the call into Rust.
            ; push rbx
            ; call ->sum
            ; mov rdi, rax
            ; mov rax, QWORD [->rust_ptr]
            ; call rax
            ; add rax, k as i32
            ; pop rbx
            ; ret
            ; .align 8
            ; ->rust_ptr:
            ; .u64 target
        );
        vec![sum, caller]
    };

    #[cfg(target_arch = "aarch64")]
    let entries = {
        let sum = ops.offset().0;
        dynasm!(ops
            ; .arch aarch64
            ; ->sum:
            ; mov x1, x0
            ; movz x0, 0
            ; cbz x1, >done
            ; repeat:
            ; add x0, x0, x1
            ; subs x1, x1, 1
            ; b.ne <repeat
            ; done:
            ; ret
        );
        let caller = ops.offset().0;
        dynasm!(ops
            ; .arch aarch64
            // A frame record, so that x30 survives the two calls.
            ; stp x29, x30, [sp, -16]!
            ; mov x29, sp
            ; bl ->sum
            ; ldr x9, ->rust_ptr
            ; blr x9
            ; add x0, x0, k
            ; ldp x29, x30, [sp], 16
            ; ret
            // Data after the last `ret`: the zero padding is never executed.
            ; .align 8
            ; ->rust_ptr:
            ; .u64 target
        );
        vec![sum, caller]
    };

    #[cfg(target_arch = "riscv64")]
    let entries = {
        let sum = ops.offset().0;
        dynasm!(ops
            ; .arch riscv64
            ; ->sum:
            ; mv t0, a0
            ; addi a0, zero, 0
            ; beqz t0, >done
            ; repeat:
            ; add a0, a0, t0
            ; addi t0, t0, -1
            ; bnez t0, <repeat
            ; done:
            ; ret
        );
        let caller = ops.offset().0;
        dynasm!(ops
            ; .arch riscv64
            // sp stays 16-byte aligned; ra survives the two calls in the frame.
            ; addi sp, sp, -16
            ; sd ra, [sp, 8]
            ; jal ->sum
            ; ld t0, ->rust_ptr
            ; jalr t0
            ; addi a0, a0, k as i32
            ; ld ra, [sp, 8]
            ; addi sp, sp, 16
            ; ret
            // Data after the last `ret`: the zero padding is never executed.
            ; .align 8
            ; ->rust_ptr:
            ; .u64 target
        );
        vec![sum, caller]
    };

    let code = ops.finalize().expect("dynasm relocations of module A");
    Assembled { code, entries }
}

/// Module B: `select(i)` = `CASES[i] + k` for i < 4, else `k`: a bounds check with a forward
/// branch, then an indirect jump into a table of branches to the cases.
fn module_b(base: usize, k: u32) -> Assembled {
    let mut ops: VecAssembler<Reloc> = VecAssembler::new(base);
    let [c0, c1, c2, c3] = CASES.map(|c| c as u32 + k);
    let select = ops.offset().0;

    #[cfg(target_arch = "x86_64")]
    dynasm!(ops
        ; .arch x64
        ; cmp rdi, 4
        ; jae >default
        ; lea rax, [>table]
        ; lea rax, [rax + rdi * 8]
        ; jmp rax
        // One entry per 8 bytes whatever the jump's length; the padding is `nop` (0x90).
        ; .align 8
        ; table:
        ; jmp >case0
        ; .align 8
        ; jmp >case1
        ; .align 8
        ; jmp >case2
        ; .align 8
        ; jmp >case3
        ; case0:
        ; mov eax, c0 as i32
        ; ret
        ; case1:
        ; mov eax, c1 as i32
        ; ret
        ; case2:
        ; mov eax, c2 as i32
        ; ret
        ; case3:
        ; mov eax, c3 as i32
        ; ret
        ; default:
        ; mov eax, k as i32
        ; ret
    );

    #[cfg(target_arch = "aarch64")]
    dynasm!(ops
        ; .arch aarch64
        ; cmp x0, 4
        ; b.hs >default
        ; adr x9, >table
        ; add x9, x9, x0, lsl 2
        ; br x9
        ; table:
        ; b >case0
        ; b >case1
        ; b >case2
        ; b >case3
        ; case0:
        ; movz x0, c0
        ; ret
        ; case1:
        ; movz x0, c1
        ; ret
        ; case2:
        ; movz x0, c2
        ; ret
        ; case3:
        ; movz x0, c3
        ; ret
        ; default:
        ; movz x0, k
        ; ret
    );

    #[cfg(target_arch = "riscv64")]
    dynasm!(ops
        ; .arch riscv64
        ; addi t1, zero, 4
        ; bgeu a0, t1, >default
        ; la t0, >table
        ; slli t1, a0, 2
        ; add t0, t0, t1
        ; jr t0
        // `j` is the 4-byte `jal zero`: nothing here is compressed, so entries are 4 apart.
        ; table:
        ; j >case0
        ; j >case1
        ; j >case2
        ; j >case3
        ; case0:
        ; addi a0, zero, c0 as i32
        ; ret
        ; case1:
        ; addi a0, zero, c1 as i32
        ; ret
        ; case2:
        ; addi a0, zero, c2 as i32
        ; ret
        ; case3:
        ; addi a0, zero, c3 as i32
        ; ret
        ; default:
        ; addi a0, zero, k as i32
        ; ret
    );

    let code = ops.finalize().expect("dynasm relocations of module B");
    Assembled {
        code,
        entries: vec![select],
    }
}

type Fn1 = extern "C" fn(u64) -> u64;

/// The code at `offset` of `map` as `extern "C" fn(u64) -> u64`.
///
/// # Safety
/// A complete function of that signature is there, published, and the mapping is executable
/// whenever the result is called.
unsafe fn entry(map: &CodeMap, offset: usize) -> Fn1 {
    // SAFETY: a function pointer is an address; the caller vouches for what is there.
    unsafe { core::mem::transmute::<*const c_void, Fn1>(map.ptr_at(offset)) }
}

fn sum_to(n: u64) -> u64 {
    n * (n + 1) / 2
}

const INPUTS: [u64; 7] = [0, 1, 2, 3, 10, 1000, 65_535];

/// Calls module A's functions and checks them against `k`.
fn check_a(map: &CodeMap, off: usize, a: &Assembled, k: u32) {
    // SAFETY: `a` was written at `off` and published, and the mapping is RX (the callers).
    let (sum, caller) = unsafe {
        (
            entry(map, off + a.entries[0]),
            entry(map, off + a.entries[1]),
        )
    };
    for n in INPUTS {
        assert_eq!(sum(n), sum_to(n), "sum({n}), k = {k}");
        assert_eq!(
            caller(n),
            rust_mix(sum_to(n)) + u64::from(k),
            "caller({n}), k = {k}"
        );
    }
}

/// Calls module B's `select` for every case and out-of-range indices, checking against `k`.
fn check_b(map: &CodeMap, off: usize, b: &Assembled, k: u32) {
    // SAFETY: as in `check_a`.
    let select = unsafe { entry(map, off + b.entries[0]) };
    for i in 0..8u64 {
        let want = CASES.get(i as usize).copied().unwrap_or(0) + u64::from(k);
        assert_eq!(select(i), want, "select({i}), k = {k}");
    }
    assert_eq!(select(u64::MAX), u64::from(k), "select(MAX), k = {k}");
}

/// Two modules in one mapping, module B straddling a page boundary, published together, then
/// patched in place with new constants: both at once (`clear_cache_many`), then B alone
/// (`clear_cache`), each time checking that the new constant, and only it, took effect.
#[test]
fn dynasm_code_runs_and_repatches() {
    let page = page_size();
    let mut map = CodeMap::new(2 * page).unwrap();
    // Off any cache-line boundary, 8-aligned for the literal; B starts 24 bytes before page 2.
    let off_a = 40;
    let off_b = page - 24;

    let mut previous: Option<(Vec<u8>, Vec<u8>)> = None;
    for (k_a, k_b) in [(5, 5), (900, 1234), (17, 77)] {
        let a = module_a(map.addr() + off_a, k_a);
        let b = module_b(map.addr() + off_b, k_b);
        assert!(off_a + a.code.len() <= off_b, "module A overlaps module B");
        assert!(
            off_b + b.code.len() > page,
            "module B must straddle the page boundary"
        );
        if let Some((pa, pb)) = &previous {
            // A new constant must change the bytes, or the patch would prove nothing.
            assert_ne!(pa, &a.code, "module A unchanged by k = {k_a}");
            assert_ne!(pb, &b.code, "module B unchanged by k = {k_b}");
        }

        map.make_rw().unwrap();
        map.write(off_a, &a.code);
        map.write(off_b, &b.code);
        // SAFETY: both ranges lie inside the live mapping.
        unsafe {
            icache::clear_cache_many(&[
                (map.ptr_at(off_a), a.code.len()),
                (map.ptr_at(off_b), b.code.len()),
            ])
        }
        .unwrap();
        map.make_rx().unwrap();
        flush_mt_or_fail();
        check_a(&map, off_a, &a, k_a);
        check_b(&map, off_b, &b, k_b);

        // Patch B alone with another constant; A must keep this round's.
        let k_b2 = k_b + 3;
        let b2 = module_b(map.addr() + off_b, k_b2);
        assert_eq!(b2.code.len(), b.code.len(), "same shape, other constant");
        assert_ne!(b2.code, b.code);
        map.make_rw().unwrap();
        map.write(off_b, &b2.code);
        // SAFETY: the range lies inside the live mapping.
        unsafe { icache::clear_cache(map.ptr_at(off_b), b2.code.len()) }.unwrap();
        map.make_rx().unwrap();
        flush_mt_or_fail();
        check_a(&map, off_a, &a, k_a);
        check_b(&map, off_b, &b2, k_b2);

        previous = Some((a.code, b2.code));
    }
}

/// The published code called from several threads at once after one publish: the local call,
/// the call into Rust (which every thread runs on its own stack) and the jump table.
#[test]
fn dynasm_code_runs_on_many_threads() {
    let page = page_size();
    let mut map = CodeMap::new(page).unwrap();
    let off_a = 0;
    let a = module_a(map.addr() + off_a, 42);
    let off_b = (a.code.len() + 63) & !63;
    let b = module_b(map.addr() + off_b, 7);
    assert!(off_b + b.code.len() <= page);
    map.write(off_a, &a.code);
    map.write(off_b, &b.code);
    icache::clear_cache_slices(&[
        map.slice(off_a, a.code.len()),
        map.slice(off_b, b.code.len()),
    ])
    .unwrap();
    map.make_rx().unwrap();
    flush_mt_or_fail();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..200 {
                    check_a(&map, off_a, &a, 42);
                    check_b(&map, off_b, &b, 7);
                }
            });
        }
    });
}
