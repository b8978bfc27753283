//! No unprivileged way to synchronise the calling core is known here (PowerPC's `isync` needs
//! inline assembly that is not stable yet): say so rather than pretend.

use crate::{Error, ErrorKind};

pub fn pipeline_flush_local() -> Result<(), Error> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "pipeline_flush_local",
        0,
    ))
}
