//! Nothing: this package exists for its test, `tests/dynasm.rs`, which uses dynasm-rs as a real
//! JIT client of `icache`. `no_std`, so that it builds wherever the crate does.
#![no_std]
