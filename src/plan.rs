//! The pure logic behind cache maintenance: validating a range, decoding `CTR_EL0` and planning
//! which cache lines a range touches. No assembly, no system calls, no state, so it is tested
//! exhaustively, fuzzed and run under Miri; the architecture code only walks the plans it is
//! given.
//!
//! Public for the project's own tests and fuzz targets, and hidden from the documentation's front
//! page: it is not part of the stable API and may change in any release.

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

    /// `L1Ip`, bits 15:14: the level 1 instruction cache's indexing and tagging policy
    /// (0b00 VPIPT, 0b01 AIVIVT, both reserved in later Arm ARMs; 0b10 VIPT; 0b11 PIPT).
    ///
    /// ```
    /// assert_eq!(icache::plan::CtrEl0(0x8444_c004).l1ip(), 0b11); // Cortex-A72: PIPT
    /// assert_eq!(icache::plan::CtrEl0(0x8444_8004).l1ip(), 0b10); // Cortex-A53: VIPT
    /// ```
    pub const fn l1ip(self) -> u32 {
        ((self.0 >> 14) & 0b11) as u32
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

/// `CTR_EL0` as the crate caches it, packed so that one load and one comparison tell whether a
/// span lies in a single line of both caches, and one bit test whether the common walk applies:
/// - bits 31:0 are the register's bits 31:0 (the line fields, `L1Ip`, `IDC` and `DIC`), except
///   three fields that are RES0 in the register:
///   - bit 30, set here when the D- and I-lines have the same size and neither `IDC` nor `DIC`
///     is set, so that one walk's geometry serves both caches and both walks run
///     ([`plain`](Self::plain));
///   - bit 10, set when the lines have the same size, `IDC` is set and `DIC` is not, so only
///     the invalidation walk runs ([`idc_walk`](Self::idc_walk));
///   - bits 9:4, the log2 of the smaller line size in bytes;
/// - bits 63:32 the smaller line size in bytes (the register's bits 63:32 hold nothing the crate
///   uses).
///
/// 0 means "not read yet", which no span passes as one line and which is never plain.
///
/// ```
/// use icache::plan::{CachedCtr, CtrEl0, Span};
/// let c = CachedCtr::new(CtrEl0(0x8444_c004)); // 64-byte lines
/// assert_eq!(c.ctr(), CtrEl0(0x8444_c004));
/// assert!(c.one_line(Span::new(0x1000, 64).unwrap().unwrap()));
/// assert!(!c.one_line(Span::new(0x1001, 64).unwrap().unwrap()));
/// assert!(!CachedCtr::NOT_READ.one_line(Span::new(0x1000, 1).unwrap().unwrap()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CachedCtr(pub u64);

impl CachedCtr {
    /// The value before the register was read.
    pub const NOT_READ: CachedCtr = CachedCtr(0);

    /// Packs a register value. Never [`NOT_READ`](Self::NOT_READ): line sizes are at least 4.
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0};
    /// assert_eq!(CachedCtr::new(CtrEl0(0x8444_8003)).min_line(), 32); // I 32, D 64
    /// ```
    #[inline(always)]
    pub const fn new(ctr: CtrEl0) -> Self {
        let (d, i) = (ctr.dcache_line(), ctr.icache_line());
        let min = if d < i { d } else { i };
        let plain = match (d == i && !ctr.dic(), ctr.idc()) {
            (true, false) => Self::PLAIN,
            (true, true) => Self::IDC_ONLY,
            (false, _) => 0,
        };
        let log2 = (min.trailing_zeros() as u64) << Self::LOG2_SHIFT;
        CachedCtr((ctr.0 & Self::CTR_FIELDS) | plain | log2 | ((min as u64) << 32))
    }

    /// Whether this holds a register value.
    ///
    /// ```
    /// assert!(!icache::plan::CachedCtr::NOT_READ.is_read());
    /// ```
    #[inline(always)]
    pub const fn is_read(self) -> bool {
        self.0 != 0
    }

    /// Bit 30: same line sizes, neither `IDC` nor `DIC`.
    const PLAIN: u64 = 1 << 30;
    /// Bit 10: same line sizes, `IDC` but not `DIC`.
    const IDC_ONLY: u64 = 1 << 10;
    /// Bits 9:4: log2 of the smaller line size.
    const LOG2_SHIFT: u32 = 4;
    const LOG2_MASK: u64 = 0x3f << Self::LOG2_SHIFT;
    /// The register's bits this keeps: 31:0 but for the RES0 bits used above.
    const CTR_FIELDS: u64 = 0xffff_ffff & !Self::PLAIN & !Self::IDC_ONLY & !Self::LOG2_MASK;

    /// The register's fields (bits 31:0; bits 30 and 10:4, RES0, as 0).
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0};
    /// assert_eq!(CachedCtr::new(CtrEl0(0x9444_c004)).ctr(), CtrEl0(0x9444_c004));
    /// ```
    #[inline(always)]
    pub const fn ctr(self) -> CtrEl0 {
        CtrEl0(self.0 & Self::CTR_FIELDS)
    }

    /// Whether the D- and I-lines have the same size, so that the lines a span touches are the
    /// same in both caches.
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0};
    /// assert!(CachedCtr::new(CtrEl0(0x8444_c004)).same_lines());
    /// assert!(!CachedCtr::new(CtrEl0(0x8444_c003)).same_lines());
    /// ```
    #[inline(always)]
    pub const fn same_lines(self) -> bool {
        self.ctr().dcache_line() == self.ctr().icache_line()
    }

    /// Whether the common walk applies: the D- and I-lines have the same size and the sequence
    /// needs both walks (neither `IDC` nor `DIC`). Never for a value not read yet.
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0};
    /// assert!(CachedCtr::new(CtrEl0(0x8444_c004)).plain());
    /// assert!(!CachedCtr::new(CtrEl0(0x9444_c004)).plain()); // IDC
    /// assert!(!CachedCtr::new(CtrEl0(0x8444_c003)).plain()); // I 32, D 64
    /// assert!(!CachedCtr::NOT_READ.plain());
    /// ```
    #[inline(always)]
    pub const fn plain(self) -> bool {
        self.0 & Self::PLAIN != 0
    }

    /// For a [`plain`](Self::plain) value, the walk over the lines `span` touches (the same in
    /// both caches): [`LineWalk::new`] with that size, from the packed log2, which needs no
    /// clamping (`CTR_EL0` line sizes are 4 B to 128 KiB). `None` otherwise, so one bit test
    /// chooses the common path. (A value not made by [`new`](Self::new) may give lines of 1 or
    /// 2 bytes, or on 32-bit targets a wrong walk: never an overflow or a panic.)
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0, Span};
    /// let s = Span::new(0x1030, 0x20).unwrap().unwrap();
    /// let w = CachedCtr::new(CtrEl0(0x8444_c004)).plain_walk(s).unwrap();
    /// assert_eq!((w.first(), w.count(), w.step()), (0x1000, 2, 64));
    /// assert!(CachedCtr::NOT_READ.plain_walk(s).is_none());
    /// ```
    #[inline(always)]
    pub const fn plain_walk(self, span: Span) -> Option<LineWalk> {
        self.walk_if(Self::PLAIN, span)
    }

    /// As [`plain_walk`](Self::plain_walk) for cores with `IDC` (no clean needed) but not `DIC`
    /// and lines of one size: the walk of the invalidation, or `None`.
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0, Span};
    /// let s = Span::new(0x1030, 0x20).unwrap().unwrap();
    /// let idc = CachedCtr::new(CtrEl0(0x9444_c004));
    /// assert_eq!(idc.idc_walk(s).unwrap().count(), 2);
    /// assert!(idc.plain_walk(s).is_none());
    /// assert!(CachedCtr::new(CtrEl0(0x8444_c004)).idc_walk(s).is_none());
    /// assert!(CachedCtr::new(CtrEl0(0xb444_c004)).idc_walk(s).is_none()); // DIC too
    /// ```
    #[inline(always)]
    pub const fn idc_walk(self, span: Span) -> Option<LineWalk> {
        self.walk_if(Self::IDC_ONLY, span)
    }

    #[inline(always)]
    const fn walk_if(self, bit: u64, span: Span) -> Option<LineWalk> {
        if self.0 & bit == 0 {
            return None;
        }
        let log2 = ((self.0 & Self::LOG2_MASK) >> Self::LOG2_SHIFT) as u32;
        Some(LineWalk::of_lines(span, log2))
    }

    /// The smaller line size in bytes, 0 before the register was read.
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0};
    /// assert_eq!(CachedCtr::new(CtrEl0(0x8666_8006)).min_line(), 256);
    /// ```
    #[inline(always)]
    pub const fn min_line(self) -> usize {
        (self.0 >> 32) as usize
    }

    /// Whether the span lies in one line of each cache, so that one `dc cvau` and one `ic ivau`
    /// on any of its addresses cover it: its first and last byte differ only in the bits below
    /// the smaller line size. Never for a value not read yet.
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0, Span};
    /// let c = CachedCtr::new(CtrEl0(0x8444_c004));
    /// assert!(c.one_line(Span::new(0x103c, 4).unwrap().unwrap()));
    /// assert!(!c.one_line(Span::new(0x103e, 4).unwrap().unwrap()));
    /// ```
    #[inline(always)]
    pub const fn one_line(self, span: Span) -> bool {
        (span.start ^ span.last) < self.min_line()
    }

    /// Whether the span lies in at most two lines of the smaller size: the line of its first
    /// byte and the line of its last. Never for a value not read yet.
    ///
    /// ```
    /// use icache::plan::{CachedCtr, CtrEl0, Span};
    /// let c = CachedCtr::new(CtrEl0(0x8444_c004)); // 64-byte lines
    /// assert!(c.two_lines(Span::new(0x103c, 8).unwrap().unwrap()));
    /// assert!(c.two_lines(Span::new(0x1000, 128).unwrap().unwrap()));
    /// assert!(!c.two_lines(Span::new(0x103c, 69).unwrap().unwrap()));
    /// ```
    #[inline(always)]
    pub const fn two_lines(self, span: Span) -> bool {
        let line = self.min_line();
        let first_line = span.start & !line.wrapping_sub(1);
        span.last - first_line < 2 * line
    }
}

/// A non-empty range of addresses that does not wrap around the address space: the only input
/// the platform code takes. Built by one checked constructor, [`Span::new`], so every walk
/// planned from it has at least one line and no address computation on it overflows.
///
/// ```
/// use icache::plan::Span;
/// let s = Span::new(0x1000, 0x10).unwrap().unwrap();
/// assert_eq!((s.start(), s.last(), s.len()), (0x1000, 0x100f, 0x10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    start: usize,
    last: usize,
}

/// The error of [`Span::new`]: the range runs past the top of the address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WrapsAround;

impl Span {
    /// The `len` bytes from `start`: `Ok(None)` for an empty range (which needs nothing, whatever
    /// `start` is), [`WrapsAround`] if the range runs past the top of the address space. A range
    /// that ends exactly at the top is valid.
    ///
    /// ```
    /// use icache::plan::{Span, WrapsAround};
    /// assert_eq!(Span::new(0x1000, 0), Ok(None));
    /// assert_eq!(Span::new(usize::MAX, 1).unwrap().unwrap().last(), usize::MAX);
    /// assert_eq!(Span::new(usize::MAX, 2), Err(WrapsAround));
    /// ```
    #[inline(always)]
    pub const fn new(start: usize, len: usize) -> Result<Option<Span>, WrapsAround> {
        if len == 0 {
            return Ok(None);
        }
        match start.checked_add(len - 1) {
            Some(last) => Ok(Some(Span { start, last })),
            None => Err(WrapsAround),
        }
    }

    /// The first byte's address.
    ///
    /// ```
    /// assert_eq!(icache::plan::Span::new(7, 1).unwrap().unwrap().start(), 7);
    /// ```
    #[inline(always)]
    pub const fn start(self) -> usize {
        self.start
    }

    /// The last byte's address (inclusive, so a span can end at `usize::MAX`).
    ///
    /// ```
    /// assert_eq!(icache::plan::Span::new(7, 2).unwrap().unwrap().last(), 8);
    /// ```
    #[inline(always)]
    pub const fn last(self) -> usize {
        self.last
    }

    /// The number of bytes, at least 1.
    ///
    /// ```
    /// assert_eq!(icache::plan::Span::new(usize::MAX, 1).unwrap().unwrap().len(), 1);
    /// ```
    #[inline(always)]
    #[allow(clippy::len_without_is_empty)] // A span is never empty.
    pub const fn len(self) -> usize {
        self.last - self.start + 1
    }

    /// The address one past the last byte, saturated at `usize::MAX` for a span that ends at the
    /// top of the address space (system calls take `[start, end)`; no mapping reaches the top).
    ///
    /// ```
    /// assert_eq!(icache::plan::Span::new(7, 2).unwrap().unwrap().end(), 9);
    /// ```
    #[inline(always)]
    pub const fn end(self) -> usize {
        self.last.saturating_add(1)
    }

    /// The smallest span that holds both.
    ///
    /// ```
    /// use icache::plan::Span;
    /// let (a, b) = (Span::new(0x40, 8).unwrap().unwrap(), Span::new(0x10, 4).unwrap().unwrap());
    /// assert_eq!(a.hull(b), Span::new(0x10, 0x38).unwrap().unwrap());
    /// ```
    #[inline(always)]
    pub const fn hull(self, other: Span) -> Span {
        Span {
            start: if self.start < other.start {
                self.start
            } else {
                other.start
            },
            last: if self.last > other.last {
                self.last
            } else {
                other.last
            },
        }
    }
}

/// Coalesces spans, in the order given, into runs whose lines can be walked once: a span that
/// starts right after the run, or in the run's last line of `1 << line_log2` bytes or the line
/// after it, or anywhere in the run, extends the run (a JIT's functions written back to back
/// become one run). The lines of the runs are exactly the lines of the spans, so walking the
/// runs does the same maintenance with less arithmetic, and a line two neighbouring spans
/// share is maintained once.
///
/// ```
/// use icache::plan::{Coalesce, Span};
/// let s = |start, len| Span::new(start, len).unwrap().unwrap();
/// let mut c = Coalesce::new(s(0x1000, 0x100), 6);
/// assert_eq!(c.push(s(0x1100, 0x100)), None); // back to back: one run
/// assert_eq!(c.push(s(0x9000, 4)), Some(s(0x1000, 0x200))); // elsewhere: the run is done
/// assert_eq!(c.finish(), s(0x9000, 4));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Coalesce {
    line_log2: u32,
    /// The run's first byte.
    start: usize,
    /// One past the run's last byte, wrapped: 0 for a run that ends at the top of the address
    /// space. Kept rather than the last byte so that a span back to back costs one comparison.
    next: usize,
}

impl Coalesce {
    /// A run of the first span; lines of `1 << line_log2` bytes, clamped as [`LineWalk::new`]
    /// clamps them.
    ///
    /// ```
    /// use icache::plan::{Coalesce, Span};
    /// let s = Span::new(64, 1).unwrap().unwrap();
    /// assert_eq!(Coalesce::new(s, 6).finish(), s);
    /// ```
    #[inline(always)]
    pub const fn new(first: Span, line_log2: u32) -> Self {
        Coalesce {
            line_log2: clamp_line_log2(line_log2),
            start: first.start,
            next: first.last.wrapping_add(1),
        }
    }

    /// Adds the next span: extends the run, or returns the run it ended and starts a new one.
    ///
    /// ```
    /// use icache::plan::{Coalesce, Span};
    /// let s = |start, len| Span::new(start, len).unwrap().unwrap();
    /// let mut c = Coalesce::new(s(0x1000, 8), 6);
    /// assert_eq!(c.push(s(0x1030, 8)), None); // the same 64-byte line
    /// assert_eq!(c.push(s(0x1080, 8)), Some(s(0x1000, 0x38))); // a line in between
    /// ```
    #[inline(always)]
    pub fn push(&mut self, span: Span) -> Option<Span> {
        let last = self.next.wrapping_sub(1);
        // A start in the run or in the line after its last: cannot overflow, a line index is
        // at most `usize::MAX >> 2`.
        if span.start >= self.start && span.start >> self.line_log2 <= (last >> self.line_log2) + 1
        {
            if span.last > last {
                self.next = span.last.wrapping_add(1);
            }
            return None;
        }
        let done = Span {
            start: self.start,
            last,
        };
        self.start = span.start;
        self.next = span.last.wrapping_add(1);
        Some(done)
    }

    /// [`push`](Self::push) for a range not yet checked: `len` bytes from `start`, which may be
    /// empty (skipped) or wrap ([`WrapsAround`], the run unchanged). A range that starts where
    /// the run ends takes one comparison and one addition: the batches of a JIT that writes
    /// its functions back to back.
    ///
    /// ```
    /// use icache::plan::{Coalesce, Span, WrapsAround};
    /// let s = |start, len| Span::new(start, len).unwrap().unwrap();
    /// let mut c = Coalesce::new(s(0x1000, 0x100), 6);
    /// assert_eq!(c.push_range(0x1100, 0x100), Ok(None));
    /// assert_eq!(c.push_range(0x5000, 0), Ok(None));
    /// assert_eq!(c.push_range(usize::MAX, 2), Err(WrapsAround));
    /// assert_eq!(c.push_range(0x5000, 4), Ok(Some(s(0x1000, 0x200))));
    /// ```
    #[inline(always)]
    pub fn push_range(&mut self, start: usize, len: usize) -> Result<Option<Span>, WrapsAround> {
        if start == self.next && start != 0 {
            if let Some(end) = start.checked_add(len) {
                self.next = end;
                return Ok(None);
            }
        }
        Ok(match Span::new(start, len)? {
            None => None,
            Some(span) => self.push(span),
        })
    }

    /// The run in progress.
    ///
    /// ```
    /// use icache::plan::{Coalesce, Span};
    /// let s = |start, len| Span::new(start, len).unwrap().unwrap();
    /// let mut c = Coalesce::new(s(0, 64), 6);
    /// c.push(s(64, 64));
    /// assert_eq!(c.finish(), s(0, 128));
    /// ```
    #[inline(always)]
    pub const fn finish(self) -> Span {
        Span {
            start: self.start,
            last: self.next.wrapping_sub(1),
        }
    }
}

/// The runs of `spans` ([`Coalesce`] over lines of `1 << line_log2` bytes), as an iterator.
///
/// ```
/// use icache::plan::{runs, Span};
/// let s = |start, len| Span::new(start, len).unwrap().unwrap();
/// let spans = [s(0, 256), s(256, 256), s(4096, 8)];
/// assert_eq!(runs(spans.into_iter(), 6).collect::<Vec<_>>(), [s(0, 512), s(4096, 8)]);
/// ```
pub fn runs<I: Iterator<Item = Span>>(mut spans: I, line_log2: u32) -> Runs<I> {
    Runs {
        coalesce: spans.next().map(|first| Coalesce::new(first, line_log2)),
        spans,
    }
}

/// The iterator of [`runs`].
#[derive(Clone, Debug)]
pub struct Runs<I> {
    spans: I,
    coalesce: Option<Coalesce>,
}

impl<I: Iterator<Item = Span>> Iterator for Runs<I> {
    type Item = Span;

    #[inline(always)]
    fn next(&mut self) -> Option<Span> {
        let coalesce = self.coalesce.as_mut()?;
        for span in self.spans.by_ref() {
            if let Some(run) = coalesce.push(span) {
                return Some(run);
            }
        }
        self.coalesce.take().map(Coalesce::finish)
    }
}

/// `line_log2` within what a walk takes: [`LineWalk::MIN_LINE_LOG2`] to
/// [`LineWalk::MAX_LINE_LOG2`].
#[inline(always)]
const fn clamp_line_log2(line_log2: u32) -> u32 {
    if line_log2 < LineWalk::MIN_LINE_LOG2 {
        LineWalk::MIN_LINE_LOG2
    } else if line_log2 > LineWalk::MAX_LINE_LOG2 {
        LineWalk::MAX_LINE_LOG2
    } else {
        line_log2
    }
}

/// A walk over consecutive cache lines: the lines of `1 << line_log2` bytes that hold a
/// [`Span`], from the first to the last, at least one.
///
/// ```
/// use icache::plan::{LineWalk, Span};
/// let w = LineWalk::new(Span::new(0x1003, 0x41).unwrap().unwrap(), 6); // 64-byte lines
/// assert_eq!((w.first(), w.count()), (0x1000, 2));
/// assert_eq!(w.addresses().collect::<Vec<_>>(), [0x1000, 0x1040]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineWalk {
    first: usize,
    more: usize,
    line_log2: u32,
}

impl LineWalk {
    /// The smallest line size a walk takes, log2 (4 bytes, `CTR_EL0`'s smallest).
    pub const MIN_LINE_LOG2: u32 = 2;
    /// The largest line size a walk takes, log2 (half the address space).
    pub const MAX_LINE_LOG2: u32 = usize::BITS - 1;

    /// The lines of `1 << line_log2` bytes that overlap `span`. `line_log2` is clamped to
    /// [`MIN_LINE_LOG2`](Self::MIN_LINE_LOG2)..=[`MAX_LINE_LOG2`](Self::MAX_LINE_LOG2), so that
    /// the line count and every address fit a `usize` (`CTR_EL0` reports 4 B to 128 KiB).
    ///
    /// Counting lines, rather than comparing against an end address, keeps the walk correct
    /// even for a span that ends at the very top of the address space.
    ///
    /// ```
    /// use icache::plan::{LineWalk, Span};
    /// let w = LineWalk::new(Span::new(64, 64).unwrap().unwrap(), 6);
    /// assert_eq!((w.first(), w.count()), (64, 1));
    /// ```
    #[inline(always)]
    pub const fn new(span: Span, line_log2: u32) -> Self {
        Self::of_lines(span, clamp_line_log2(line_log2))
    }

    /// [`new`](Self::new) without the clamp, for a size already known to be valid
    /// ([`CachedCtr`]'s packed one). Wrapping shifts: never a panic, whatever `line_log2` is.
    #[inline(always)]
    const fn of_lines(span: Span, line_log2: u32) -> Self {
        let first_index = span.start.wrapping_shr(line_log2);
        LineWalk {
            first: first_index.wrapping_shl(line_log2),
            more: span.last.wrapping_shr(line_log2).wrapping_sub(first_index),
            line_log2,
        }
    }

    /// Address of the first line: the span's start aligned down to the line size.
    ///
    /// ```
    /// use icache::plan::{LineWalk, Span};
    /// assert_eq!(LineWalk::new(Span::new(70, 1).unwrap().unwrap(), 6).first(), 64);
    /// ```
    #[inline(always)]
    pub const fn first(&self) -> usize {
        self.first
    }

    /// The number of lines after the first (the assembly walks the first one unconditionally).
    ///
    /// ```
    /// use icache::plan::{LineWalk, Span};
    /// assert_eq!(LineWalk::new(Span::new(60, 8).unwrap().unwrap(), 6).more(), 1);
    /// ```
    #[inline(always)]
    pub const fn more(&self) -> usize {
        self.more
    }

    /// The number of lines, at least 1.
    ///
    /// ```
    /// use icache::plan::{LineWalk, Span};
    /// assert_eq!(LineWalk::new(Span::new(0, 256).unwrap().unwrap(), 6).count(), 4);
    /// ```
    #[inline(always)]
    pub const fn count(&self) -> usize {
        // Cannot overflow: with lines of 4 bytes or more, `more` is at most `usize::MAX >> 2`.
        self.more + 1
    }

    /// log2 of the line size in bytes.
    ///
    /// ```
    /// use icache::plan::{LineWalk, Span};
    /// assert_eq!(LineWalk::new(Span::new(0, 1).unwrap().unwrap(), 0).line_log2(), 2);
    /// ```
    #[inline(always)]
    pub const fn line_log2(&self) -> u32 {
        self.line_log2
    }

    /// The line size in bytes.
    ///
    /// ```
    /// use icache::plan::{LineWalk, Span};
    /// assert_eq!(LineWalk::new(Span::new(0, 1).unwrap().unwrap(), 5).step(), 32);
    /// ```
    #[inline(always)]
    pub const fn step(&self) -> usize {
        1 << self.line_log2
    }

    /// The address of every line of the walk, in order.
    ///
    /// ```
    /// use icache::plan::{LineWalk, Span};
    /// let w = LineWalk::new(Span::new(30, 4).unwrap().unwrap(), 5);
    /// assert_eq!(w.addresses().collect::<Vec<_>>(), [0, 32]);
    /// ```
    pub fn addresses(self) -> impl Iterator<Item = usize> {
        (0..=self.more).map(move |i| self.first + (i << self.line_log2))
    }
}

/// What AArch64 must do for one span: the D-lines to clean (`dc cvau`) and the I-lines to
/// invalidate (`ic ivau`), each `None` when `CTR_EL0` says that step is not needed.
///
/// ```
/// use icache::plan::{CtrEl0, RangePlan, Span};
/// let span = Span::new(0x1010, 0x20).unwrap().unwrap();
/// let p = RangePlan::new(span, CtrEl0(0x8444_c004));
/// assert_eq!(p.clean.unwrap().count(), 1);
/// assert_eq!(p.invalidate.unwrap().count(), 1);
/// let coherent = RangePlan::new(span, CtrEl0(0xb444_c004));
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
    /// Plans one span with the line sizes and flags of `ctr`.
    ///
    /// ```
    /// use icache::plan::{CtrEl0, RangePlan, Span};
    /// let p = RangePlan::new(Span::new(0, 4).unwrap().unwrap(), CtrEl0(0x9444_c004)); // IDC
    /// assert!(p.clean.is_none() && p.invalidate.is_some());
    /// ```
    #[inline(always)]
    pub const fn new(span: Span, ctr: CtrEl0) -> Self {
        RangePlan {
            clean: if ctr.idc() {
                None
            } else {
                Some(LineWalk::new(span, ctr.dcache_line_log2()))
            },
            invalidate: if ctr.dic() {
                None
            } else {
                Some(LineWalk::new(span, ctr.icache_line_log2()))
            },
        }
    }
}
