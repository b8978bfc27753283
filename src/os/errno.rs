//! The one conversion of a raw system-call result: negative means "failed, see `errno`".

/// `Ok(r)` for a non-negative result, else `Err` with this thread's `errno`.
#[inline]
pub fn result<T: Copy + PartialOrd + From<i8>>(r: T) -> Result<T, i32> {
    if r >= T::from(0) {
        return Ok(r);
    }
    Err(super::errno())
}
