//! `CtrEl0` decoding against the register's definition (Arm ARM D23.2): `IminLine` bits 3:0
//! and `DminLine` bits 19:16 count 4-byte words as a power of two, `IDC` is bit 28, `DIC` bit 29,
//! and no other bit changes what the crate does.
#![no_main]

use icache::plan::CtrEl0;
use libfuzzer_sys::fuzz_target;

/// The bits the crate may read.
const USED: u64 = 0xf | (0xf << 16) | (1 << 28) | (1 << 29);

/// Bytes in a line whose size field is `words_log2`: `2^words_log2` words of 4 bytes.
fn line_bytes(words_log2: u64) -> usize {
    4 * 2usize.pow(words_log2 as u32)
}

fuzz_target!(|input: (u64, u64)| {
    let (raw, noise) = input;
    let ctr = CtrEl0(raw);
    let (dwords, iwords) = ((raw >> 16) & 0xf, raw & 0xf);

    assert_eq!(ctr.dcache_line(), line_bytes(dwords), "{raw:#x}");
    assert_eq!(ctr.icache_line(), line_bytes(iwords), "{raw:#x}");
    assert_eq!(
        1usize << ctr.dcache_line_log2(),
        ctr.dcache_line(),
        "{raw:#x}"
    );
    assert_eq!(
        1usize << ctr.icache_line_log2(),
        ctr.icache_line(),
        "{raw:#x}"
    );
    assert!((4..=128 * 1024).contains(&ctr.dcache_line()), "{raw:#x}");
    assert!((4..=128 * 1024).contains(&ctr.icache_line()), "{raw:#x}");
    assert_eq!(ctr.idc(), raw & (1 << 28) != 0, "{raw:#x}");
    assert_eq!(ctr.dic(), raw & (1 << 29) != 0, "{raw:#x}");

    // Flipping any bit outside the fields changes nothing.
    let other = CtrEl0(raw ^ (noise & !USED));
    assert_eq!(
        (
            other.dcache_line_log2(),
            other.icache_line_log2(),
            other.idc(),
            other.dic()
        ),
        (
            ctr.dcache_line_log2(),
            ctr.icache_line_log2(),
            ctr.idc(),
            ctr.dic()
        ),
        "{raw:#x} vs {:#x}",
        other.0
    );
});
