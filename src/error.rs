//! The crate's one error type.

use core::fmt;

/// What kind of failure an [`Error`] reports.
///
/// ```
/// use icache::ErrorKind;
/// let e = unsafe { icache::clear_cache(usize::MAX as *const _, 2) }.unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The arguments describe no valid range (for example one that wraps the address space).
    /// Nothing was touched.
    InvalidInput,
    /// No mechanism does what was asked. Either this platform has none
    /// ([`Error::raw_os_error`] is `None`), or the kernel or a sandbox refused every one the
    /// crate knows ([`Error::raw_os_error`] is the errno of the last refusal).
    Unsupported,
    /// A system call failed; [`Error::raw_os_error`] has its error number.
    Os,
}

impl fmt::Display for ErrorKind {
    /// ```
    /// assert_eq!(icache::ErrorKind::Unsupported.to_string(), "unsupported");
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Os => "system call failed",
        })
    }
}

/// Why a call of this crate did not do what it promises.
///
/// It is small (`Copy`), carries the OS error number when a system call failed, implements
/// [`core::error::Error`] and, with the `std` feature, converts into `std::io::Error` so that
/// `?` works in functions returning `io::Result` or `anyhow::Result`.
///
/// ```
/// # #[cfg(feature = "std")]
/// fn publish(code: &[u8]) -> std::io::Result<()> {
///     icache::clear_cache_slice(code)?;
///     Ok(())
/// }
/// # #[cfg(feature = "std")]
/// # publish(&[0xc3]).unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Error {
    kind: ErrorKind,
    operation: &'static str,
    errno: i32,
}

impl Error {
    /// `errno` is the OS error number, or 0 when there is none (for `Unsupported`: the last
    /// refusal seen while looking for a mechanism, 0 if the platform has none).
    pub(crate) const fn new(kind: ErrorKind, operation: &'static str, errno: i32) -> Self {
        Error {
            kind,
            operation,
            errno,
        }
    }

    /// The kind of failure.
    ///
    /// ```
    /// let e = unsafe { icache::clear_cache(usize::MAX as *const _, 2) }.unwrap_err();
    /// assert_eq!(e.kind(), icache::ErrorKind::InvalidInput);
    /// ```
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The OS error number (`errno`, or a Windows error code) behind the failure, if any.
    ///
    /// ```
    /// let e = unsafe { icache::clear_cache(usize::MAX as *const _, 2) }.unwrap_err();
    /// assert_eq!(e.raw_os_error(), None);
    /// ```
    pub const fn raw_os_error(&self) -> Option<i32> {
        if self.errno == 0 {
            None
        } else {
            Some(self.errno)
        }
    }

    /// The operation that failed, such as `"membarrier(REGISTER_PRIVATE_EXPEDITED_SYNC_CORE)"`.
    ///
    /// ```
    /// let e = unsafe { icache::clear_cache(usize::MAX as *const _, 2) }.unwrap_err();
    /// assert_eq!(e.operation(), "clear_cache");
    /// ```
    pub const fn operation(&self) -> &'static str {
        self.operation
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match (self.kind, self.errno) {
            (ErrorKind::InvalidInput, _) => "the range wraps around the address space",
            (ErrorKind::Unsupported, 0) => "this platform has no mechanism for it",
            (ErrorKind::Unsupported, _) => "the kernel or a sandbox refused every mechanism",
            (ErrorKind::Os, _) => "the system call failed",
        };
        write!(f, "{}: {}", self.operation, what)?;
        if self.errno != 0 {
            write!(f, " (os error {})", self.errno)?;
        }
        Ok(())
    }
}

impl core::error::Error for Error {}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    /// A failed system call becomes `io::Error::from_raw_os_error`, so `raw_os_error()` and
    /// `kind()` stay those of the OS (as with wasmtime's crate, which returns
    /// `io::Error::last_os_error()`); other errors keep this crate's message.
    fn from(e: Error) -> Self {
        // The error itself is the payload, so the message keeps the operation and the errno
        // (`io::Error::from_raw_os_error` would drop the operation); the kind is the errno's.
        let kind = match (e.kind, e.raw_os_error()) {
            (ErrorKind::Os, Some(errno)) => std::io::Error::from_raw_os_error(errno).kind(),
            (ErrorKind::Os, None) => std::io::ErrorKind::Other,
            (ErrorKind::InvalidInput, _) => std::io::ErrorKind::InvalidInput,
            (ErrorKind::Unsupported, _) => std::io::ErrorKind::Unsupported,
        };
        std::io::Error::new(kind, e)
    }
}
