//! Measurement programs for `icache` (not published). The binaries are the probes that
//! `.ci/icount.sh` and `.ci/bench.sh` run under qemu-user with the counting plugin; the library
//! holds the wrappers whose machine code `.ci/disasm.sh` reads and, with the `peers` feature,
//! what the peers probe and the criterion bench share.

pub mod disasm;
#[cfg(feature = "peers")]
pub mod peers;
