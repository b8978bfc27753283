//! A real client of wasmtime's icache crate: cranelift-jit compiles functions with a loop and
//! calls (to each other and to a Rust function), finalizes them (which is where cranelift-jit
//! calls `clear_cache` and `pipeline_flush_mt`), runs them, frees them and compiles the next
//! generation, usually at the same address, with other constants, so the old instructions are
//! what a stale instruction cache would hold.
//!
//!   cranelift-test single    one thread compiles and runs every generation
//!   cranelift-test threads   a second thread runs each generation after the main thread
//!                            publishes it (release store), with no system call of its own
//!                            between generations: only the publisher's `pipeline_flush_mt`
//!                            can synchronise it
//!
//! Built twice by `.ci/cranelift.sh`: against the crates.io release (stock) and against the
//! `compat/` crate of the same name (patched). It checks every result and exits non-zero on a
//! wrong one; the coherence checker judges the maintenance.

use cranelift_codegen::ir::{condcodes::IntCC, types::I64, AbiParam, InstBuilder, Signature};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Generations compiled, run and freed in each mode.
const GENERATIONS: u64 = 6;
/// The loop count `entry` is called with.
const N: i64 = 200;

/// The constants that make generation `g`'s code differ from the previous one's.
fn constants(g: u64) -> (i64, i64, i64) {
    let g = g as i64;
    (3 + 2 * g, 1000 * g + 7, 0x9e37 * (g + 1))
}

/// The Rust function the JIT code calls.
extern "C" fn host_mix(n: i64, g: i64) -> i64 {
    n.wrapping_mul(31) ^ g
}

/// What generation `g`'s `entry(n)` must return.
fn expected(g: u64, n: i64) -> i64 {
    let (k, c, x) = constants(g);
    let sum = (0..n).fold(0i64, |acc, i| {
        acc.wrapping_add(i.wrapping_mul(k).wrapping_add(c) ^ x)
    });
    sum.wrapping_add(host_mix(n, g as i64))
}

fn signature(module: &JITModule, params: usize) -> Signature {
    let mut sig = module.make_signature();
    sig.params.extend((0..params).map(|_| AbiParam::new(I64)));
    sig.returns.push(AbiParam::new(I64));
    sig
}

/// Compiles generation `g` into a fresh module: `step(x) = (x * k + c) ^ x0`,
/// `sum(n) = step(0) + ... + step(n - 1)` (a loop with a call), `entry(n) = sum(n) +
/// host_mix(n, g)`. Returns the finalized module and `entry`'s address.
fn compile(g: u64) -> (JITModule, usize) {
    let (k, c, x) = constants(g);
    let mut jit = JITBuilder::with_flags(&[("opt_level", "speed")], default_libcall_names())
        .expect("JIT builder");
    jit.symbol("host_mix", host_mix as *const u8);
    let mut module = JITModule::new(jit);
    let one = signature(&module, 1);
    let step = module
        .declare_function("step", Linkage::Local, &one)
        .unwrap();
    let sum = module
        .declare_function("sum", Linkage::Local, &one)
        .unwrap();
    let entry = module
        .declare_function("entry", Linkage::Export, &one)
        .unwrap();
    let mix = module
        .declare_function("host_mix", Linkage::Import, &signature(&module, 2))
        .unwrap();
    let mut ctx = module.make_context();
    let mut fctx = FunctionBuilderContext::new();

    let mut define = |module: &mut JITModule,
                      id: FuncId,
                      body: &dyn Fn(&mut JITModule, &mut FunctionBuilder)| {
        ctx.func.signature = one.clone();
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
            body(module, &mut b);
            b.seal_all_blocks();
            // cranelift-frontend 0.121 takes no argument here (v121's default feature says so).
            #[cfg(feature = "frontend-0-121")]
            b.finalize();
            #[cfg(not(feature = "frontend-0-121"))]
            b.finalize(module.target_config());
        }
        module.define_function(id, &mut ctx).expect("define");
        module.clear_context(&mut ctx);
    };

    define(&mut module, step, &|_, b| {
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let v = b.block_params(block)[0];
        // Plain instructions with `iconst` operands: the `_imm` forms differ between releases.
        let (k, c, x) = (
            b.ins().iconst(I64, k),
            b.ins().iconst(I64, c),
            b.ins().iconst(I64, x),
        );
        let v = b.ins().imul(v, k);
        let v = b.ins().iadd(v, c);
        let v = b.ins().bxor(v, x);
        b.ins().return_(&[v]);
    });
    define(&mut module, sum, &|module, b| {
        let step_ref = module.declare_func_in_func(step, b.func);
        let (start, head, body, exit) = (
            b.create_block(),
            b.create_block(),
            b.create_block(),
            b.create_block(),
        );
        b.append_block_params_for_function_params(start);
        for block in [head, body] {
            b.append_block_param(block, I64); // i
            b.append_block_param(block, I64); // acc
        }
        b.append_block_param(exit, I64);
        b.switch_to_block(start);
        let n = b.block_params(start)[0];
        let zero = b.ins().iconst(I64, 0);
        b.ins().jump(head, &[zero.into(), zero.into()]);
        b.switch_to_block(head);
        let (i, acc) = (b.block_params(head)[0], b.block_params(head)[1]);
        let more = b.ins().icmp(IntCC::SignedLessThan, i, n);
        b.ins()
            .brif(more, body, &[i.into(), acc.into()], exit, &[acc.into()]);
        b.switch_to_block(body);
        let (i, acc) = (b.block_params(body)[0], b.block_params(body)[1]);
        let call = b.ins().call(step_ref, &[i]);
        let s = b.inst_results(call)[0];
        let acc = b.ins().iadd(acc, s);
        let one = b.ins().iconst(I64, 1);
        let i = b.ins().iadd(i, one);
        b.ins().jump(head, &[i.into(), acc.into()]);
        b.switch_to_block(exit);
        let acc = b.block_params(exit)[0];
        b.ins().return_(&[acc]);
    });
    define(&mut module, entry, &|module, b| {
        let sum_ref = module.declare_func_in_func(sum, b.func);
        let mix_ref = module.declare_func_in_func(mix, b.func);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        let n = b.block_params(block)[0];
        let call = b.ins().call(sum_ref, &[n]);
        let s = b.inst_results(call)[0];
        let gen = b.ins().iconst(I64, g as i64);
        let call = b.ins().call(mix_ref, &[n, gen]);
        let m = b.inst_results(call)[0];
        let r = b.ins().iadd(s, m);
        b.ins().return_(&[r]);
    });
    // cranelift-jit's `clear_cache` per allocation, `mprotect`, then `pipeline_flush_mt`.
    module.finalize_definitions().expect("finalize");
    let address = module.get_finalized_function(entry) as usize;
    (module, address)
}

/// Calls generation `g`'s `entry` at `address` and checks its result.
fn run(g: u64, address: usize) {
    // SAFETY: `address` is a finalized `entry` of generation `g`, whose module is alive until
    // the caller frees it; its signature is `extern "C" fn(i64) -> i64` (the default call
    // convention of the host, which cranelift-native chose).
    let f: extern "C" fn(i64) -> i64 = unsafe { std::mem::transmute(address) };
    let got = f(N);
    assert_eq!(
        got,
        expected(g, N),
        "generation {g} returned a wrong result"
    );
}

/// Counts the generations that were compiled at the previous one's address.
static REUSED: AtomicU64 = AtomicU64::new(0);

fn single() {
    let mut last = 0;
    for g in 0..GENERATIONS {
        let (module, address) = compile(g);
        run(g, address);
        run(g, address);
        if address == last {
            REUSED.fetch_add(1, Ordering::Relaxed);
        }
        last = address;
        // SAFETY: nothing runs the module's code any more.
        unsafe { module.free_memory() };
    }
}

/// Published `entry` address and generation (+1; 0: none yet, `u64::MAX`: stop).
static ENTRY: AtomicUsize = AtomicUsize::new(0);
static PUBLISHED: AtomicU64 = AtomicU64::new(0);
/// The last generation (+1) the reader ran; it will not run it again.
static DONE: AtomicU64 = AtomicU64::new(0);

fn threads() {
    let reader = std::thread::spawn(|| {
        let mut seen = 0;
        loop {
            let published = PUBLISHED.load(Ordering::Acquire);
            if published == u64::MAX {
                break;
            }
            if published == seen {
                // No system call: a syscall's exception return would synchronise this thread.
                std::hint::spin_loop();
                continue;
            }
            run(published - 1, ENTRY.load(Ordering::Relaxed));
            seen = published;
            DONE.store(published, Ordering::Release);
        }
    });
    let mut last = 0;
    for g in 0..GENERATIONS {
        let (module, address) = compile(g);
        run(g, address);
        if address == last {
            REUSED.fetch_add(1, Ordering::Relaxed);
        }
        last = address;
        ENTRY.store(address, Ordering::Relaxed);
        PUBLISHED.store(g + 1, Ordering::Release);
        while DONE.load(Ordering::Acquire) != g + 1 {
            std::thread::yield_now();
        }
        // SAFETY: the reader finished this generation and waits for the next one.
        unsafe { module.free_memory() };
    }
    PUBLISHED.store(u64::MAX, Ordering::Release);
    reader.join().expect("the reader thread failed");
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "single" => single(),
        "threads" => threads(),
        _ => {
            eprintln!("usage: cranelift-test single|threads");
            std::process::exit(2);
        }
    }
    println!(
        "cranelift-test {mode}: {GENERATIONS} generations correct, {} of {} compiled at the previous one's address",
        REUSED.load(Ordering::Relaxed),
        GENERATIONS - 1
    );
}
