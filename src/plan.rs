//! The pure logic behind cache maintenance: decoding `CTR_EL0` and planning which cache lines a
//! range touches. No assembly, no system calls, no state, so it is tested exhaustively, fuzzed
//! and run under Miri; the architecture code only walks the plans it is given.

/// A raw value of the AArch64 `CTR_EL0` register (Cache Type Register), decoded per the Arm
/// Architecture Reference Manual (D23.2, "CTR_EL0").
///
/// ```
/// use icache::plan::CtrEl0;
/// let ctr = CtrEl0(0x8444_c004); // Cortex-A72: 64-byte lines, no IDC, no DIC
/// assert_eq!((ctr.dcache_line(), ctr.icache_line()), (64, 64));
/// assert!(!ctr.idc() && !ctr.dic());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtrEl0(pub u64);

impl CtrEl0 {
    /// log2 of the smallest D-cache line in bytes: `DminLine` (bits 19:16) counts 4-byte words.
    ///
    /// ```
    /// assert_eq!(icache::plan::CtrEl0(0x8003_8003).dcache_line_log2(), 5);
    /// ```
    pub const fn dcache_line_log2(self) -> u32 {
        ((self.0 >> 16) & 0xf) as u32 + 2
    }

    /// log2 of the smallest I-cache line in bytes: `IminLine` (bits 3:0) counts 4-byte words.
    ///
    /// ```
    /// assert_eq!(icache::plan::CtrEl0(0x8666_8006).icache_line_log2(), 8);
    /// ```
    pub const fn icache_line_log2(self) -> u32 {
        (self.0 & 0xf) as u32 + 2
    }

    /// The smallest D-cache line in bytes (4 B to 128 KiB).
    ///
    /// ```
    /// assert_eq!(icache::plan::CtrEl0(0x8666_8006).dcache_line(), 256);
    /// ```
    pub const fn dcache_line(self) -> usize {
        1 << self.dcache_line_log2()
    }

    /// The smallest I-cache line in bytes (4 B to 128 KiB).
    ///
    /// ```
    /// assert_eq!(icache::plan::CtrEl0(0x8444_8004).icache_line(), 64);
    /// ```
    pub const fn icache_line(self) -> usize {
        1 << self.icache_line_log2()
    }

    /// `IDC`, bit 28: cleaning the D-cache to the point of unification is not required.
    ///
    /// ```
    /// assert!(icache::plan::CtrEl0(0x9444_c004).idc());
    /// ```
    pub const fn idc(self) -> bool {
        self.0 & (1 << 28) != 0
    }

    /// `DIC`, bit 29: invalidating the I-cache to the point of unification is not required.
    ///
    /// ```
    /// assert!(icache::plan::CtrEl0(0xa444_c004).dic());
    /// ```
    pub const fn dic(self) -> bool {
        self.0 & (1 << 29) != 0
    }
}

/// A walk over consecutive cache lines: `count` lines of `1 << line_log2` bytes from `first`.
///
/// ```
/// use icache::plan::LineWalk;
/// let w = LineWalk::new(0x1003, 0x41, 6); // bytes 0x1003..=0x1043 with 64-byte lines
/// assert_eq!((w.first, w.count), (0x1000, 2));
/// assert_eq!(w.addresses().collect::<Vec<_>>(), [0x1000, 0x1040]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineWalk {
    /// Address of the first line: the start aligned down to the line size.
    pub first: usize,
    /// Number of lines, at least 1.
    pub count: usize,
    /// log2 of the line size in bytes.
    pub line_log2: u32,
}

impl LineWalk {
    /// The lines that overlap the `len` bytes from `start`. `len` must be non-zero and
    /// `start + (len - 1)` must not overflow (see [`last_byte`]).
    ///
    /// Counting lines, rather than comparing against an end address, keeps the walk correct
    /// even for a range that ends at the very top of the address space.
    ///
    /// ```
    /// let w = icache::plan::LineWalk::new(64, 64, 6);
    /// assert_eq!((w.first, w.count), (64, 1));
    /// ```
    #[inline(always)]
    pub const fn new(start: usize, len: usize, line_log2: u32) -> Self {
        let last = start + (len - 1);
        let first_index = start >> line_log2;
        LineWalk {
            first: first_index << line_log2,
            count: (last >> line_log2) - first_index + 1,
            line_log2,
        }
    }

    /// The line size in bytes.
    ///
    /// ```
    /// assert_eq!(icache::plan::LineWalk::new(0, 1, 5).step(), 32);
    /// ```
    #[inline(always)]
    pub const fn step(&self) -> usize {
        1 << self.line_log2
    }

    /// The address of every line of the walk, in order.
    ///
    /// ```
    /// let w = icache::plan::LineWalk::new(30, 4, 5);
    /// assert_eq!(w.addresses().collect::<Vec<_>>(), [0, 32]);
    /// ```
    pub fn addresses(self) -> impl Iterator<Item = usize> {
        (0..self.count).map(move |i| self.first + (i << self.line_log2))
    }
}

/// The address of the last byte of `len` bytes from `start`, or `None` for an empty range
/// (`Some(Err)` if the range wraps around the address space). A range that ends exactly at the
/// top of the address space is valid.
///
/// ```
/// use icache::plan::last_byte;
/// assert_eq!(last_byte(0x1000, 0), None);
/// assert_eq!(last_byte(0x1000, 0x10), Some(Ok(0x100f)));
/// assert_eq!(last_byte(usize::MAX, 1), Some(Ok(usize::MAX)));
/// assert_eq!(last_byte(usize::MAX, 2), Some(Err(())));
/// ```
#[inline(always)]
#[allow(clippy::result_unit_err)] // The only failure has no detail to carry.
pub const fn last_byte(start: usize, len: usize) -> Option<Result<usize, ()>> {
    if len == 0 {
        return None;
    }
    match start.checked_add(len - 1) {
        Some(last) => Some(Ok(last)),
        None => Some(Err(())),
    }
}

/// What AArch64 must do for one range: the D-lines to clean (`dc cvau`) and the I-lines to
/// invalidate (`ic ivau`), each `None` when `CTR_EL0` says that step is not needed.
///
/// ```
/// use icache::plan::{CtrEl0, RangePlan};
/// let p = RangePlan::new(0x1010, 0x20, CtrEl0(0x8444_c004)).unwrap();
/// assert_eq!(p.clean.unwrap().count, 1);
/// assert_eq!(p.invalidate.unwrap().count, 1);
/// let coherent = RangePlan::new(0x1010, 0x20, CtrEl0(0xb444_c004)).unwrap();
/// assert_eq!((coherent.clean, coherent.invalidate), (None, None));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RangePlan {
    /// D-lines to clean to the point of unification, unless `IDC`.
    pub clean: Option<LineWalk>,
    /// I-lines to invalidate to the point of unification, unless `DIC`.
    pub invalidate: Option<LineWalk>,
}

impl RangePlan {
    /// Plans `len` bytes from `start`. `None` for an empty range, which needs nothing at all.
    /// The caller must have rejected a wrapping range (see [`last_byte`]).
    ///
    /// ```
    /// use icache::plan::{CtrEl0, RangePlan};
    /// assert_eq!(RangePlan::new(0x1000, 0, CtrEl0(0x8444_c004)), None);
    /// ```
    #[inline(always)]
    pub const fn new(start: usize, len: usize, ctr: CtrEl0) -> Option<Self> {
        if len == 0 {
            return None;
        }
        Some(RangePlan {
            clean: if ctr.idc() {
                None
            } else {
                Some(LineWalk::new(start, len, ctr.dcache_line_log2()))
            },
            invalidate: if ctr.dic() {
                None
            } else {
                Some(LineWalk::new(start, len, ctr.icache_line_log2()))
            },
        })
    }
}
