//! Stopping an unpack at shutdown from the outside: the image source is
//! wrapped so every blob read fails once the token is cancelled. The
//! flattener reads layers continuously, so an unpack under way ends within
//! one read, and its publisher removes what it wrote (or aborts the
//! transaction) instead of holding it open past the shutdown grace.

use std::io::{self, Read};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::image::Descriptor;
use crate::source::{Fetched, ImageSource, SourceError};

/// `inner`, failing once `shutdown` is cancelled.
pub struct Cancellable {
    pub inner: Arc<dyn ImageSource>,
    pub shutdown: CancellationToken,
}

impl Cancellable {
    fn check(&self, what: &str) -> Result<(), SourceError> {
        if self.shutdown.is_cancelled() {
            return Err(SourceError::Io {
                what: what.to_owned(),
                source: cancelled(),
            });
        }
        Ok(())
    }
}

fn cancelled() -> io::Error {
    // Not `Interrupted`: readers retry that.
    io::Error::other("shutting down")
}

impl ImageSource for Cancellable {
    fn root(&self) -> Result<Fetched, SourceError> {
        self.check("root manifest")?;
        self.inner.root()
    }

    fn manifest(&self, descriptor: &Descriptor) -> Result<Fetched, SourceError> {
        self.check("manifest")?;
        self.inner.manifest(descriptor)
    }

    fn blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        self.check("blob")?;
        Ok(Box::new(CancellableRead {
            inner: self.inner.blob(descriptor)?,
            shutdown: self.shutdown.clone(),
        }))
    }
}

struct CancellableRead {
    inner: Box<dyn Read + Send>,
    shutdown: CancellationToken,
}

impl Read for CancellableRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shutdown.is_cancelled() {
            return Err(cancelled());
        }
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fail_once_cancelled() {
        let shutdown = CancellationToken::new();
        let mut reader = CancellableRead {
            inner: Box::new(io::repeat(7)),
            shutdown: shutdown.clone(),
        };
        let mut buf = [0u8; 4];
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        shutdown.cancel();
        let err = reader.read(&mut buf).unwrap_err();
        assert_eq!(err.to_string(), "shutting down");
    }
}
