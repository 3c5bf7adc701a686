//! Digest checks while bytes stream past: a reader that hashes what it
//! passes on and fails at EOF when the size or the SHA-256 differs from
//! what the descriptor (or the config's `diff_ids`) promised.
//!
//! Every byte the unpacker uses goes through one of these, so no source
//! can hand over content that was not checked.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::image::Digest;

/// What a [`VerifyingReader`] found wrong, carried inside an `io::Error`
/// (kind `InvalidData`) so it survives decoders and tar readers; recover it
/// with [`Mismatch::find`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum Mismatch {
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    Size {
        what: String,
        expected: u64,
        actual: u64,
    },
}

impl Mismatch {
    /// The mismatch inside `error`, if `error` came from a verifying reader.
    pub fn find(error: &io::Error) -> Option<&Mismatch> {
        error.get_ref()?.downcast_ref::<Mismatch>()
    }
}

/// Passes bytes through, hashing them; at EOF checks the digest (and the
/// size when one is expected) and turns a difference into an error.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    expected_digest: Digest,
    expected_size: Option<u64>,
    what: String,
    /// Set once EOF was reached and checked, so a second EOF read is cheap.
    verified: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// `what` names the content in errors (e.g. `layer 2 blob sha256:…`).
    pub fn new(inner: R, expected: Digest, size: Option<u64>, what: impl Into<String>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            read: 0,
            expected_digest: expected,
            expected_size: size,
            what: what.into(),
            verified: false,
        }
    }

    /// Bytes passed on so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The wrapped reader, unverified from here on.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads whatever is left (to check it) and reports the total size.
    pub fn finish(mut self) -> io::Result<u64> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.read)
    }

    fn check(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        if let Some(expected) = self.expected_size
            && expected != self.read
        {
            return Err(invalid(Mismatch::Size {
                what: self.what.clone(),
                expected,
                actual: self.read,
            }));
        }
        let actual = Digest::from_sha256(self.hasher.clone().finalize().into());
        if actual != self.expected_digest {
            return Err(invalid(Mismatch::Digest {
                what: self.what.clone(),
                expected: self.expected_digest.clone(),
                actual,
            }));
        }
        self.verified = true;
        Ok(())
    }
}

fn invalid(mismatch: Mismatch) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, mismatch)
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if let Some(expected) = self.expected_size
            && self.read > expected
        {
            return Err(invalid(Mismatch::Size {
                what: self.what.clone(),
                expected,
                actual: self.read,
            }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(reader: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn matching_content_passes_through() {
        let data = b"layer bytes".to_vec();
        let mut reader = VerifyingReader::new(&data[..], Digest::of(&data), Some(11), "blob");
        assert_eq!(read_all(&mut reader).unwrap(), data);
    }

    #[test]
    fn a_different_digest_fails_at_eof() {
        let mut reader = VerifyingReader::new(&b"evil"[..], Digest::of(b"good"), None, "blob x");
        let error = read_all(&mut reader).unwrap_err();
        let mismatch = Mismatch::find(&error).expect("a Mismatch inside");
        assert!(matches!(mismatch, Mismatch::Digest { .. }), "{mismatch}");
        assert!(error.to_string().contains("blob x"), "{error}");
    }

    #[test]
    fn a_short_or_long_blob_is_a_size_mismatch() {
        for size in [3, 5] {
            let mut reader =
                VerifyingReader::new(&b"four"[..], Digest::of(b"four"), Some(size), "b");
            let error = read_all(&mut reader).unwrap_err();
            assert!(
                matches!(Mismatch::find(&error), Some(Mismatch::Size { .. })),
                "{size}: {error}"
            );
        }
    }
}
