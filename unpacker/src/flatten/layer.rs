//! A layer blob as a verified tar stream: the compressed bytes are hashed
//! against the descriptor's digest, the uncompressed ones against the
//! config's `diff_id`, both as they pass.
//!
//! [`scan`] reads a layer once (headers, digests, and file contents into
//! the spool); [`Stream`] is what the tar writer reads data from in its
//! second pass.

use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::compression::{Decoded, decode};
use crate::image::{Descriptor, Digest};
use crate::source::ImageSource;
use crate::unpack::UnpackError;
use crate::verify::{Mismatch, VerifyingReader};

use super::entry::{Entry, Kind, Parsed, from_tar};
use super::pipe;
use super::spool::Spool;

/// Counts bytes as they pass (for progress and reports).
struct Counting<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

type Compressed<'a> = VerifyingReader<Counting<'a, Box<dyn Read + Send>>>;

/// One layer, open for reading: decompressed and verified.
pub struct Stream<'a> {
    tar: VerifyingReader<Decoded<Compressed<'a>>>,
    layer: usize,
}

impl<'a> Stream<'a> {
    /// Opens layer number `layer`; `diff_id` is checked when given.
    pub fn open(
        source: &dyn ImageSource,
        descriptor: &Descriptor,
        layer: usize,
        diff_id: &Digest,
        counter: &'a AtomicU64,
    ) -> Result<Self, UnpackError> {
        let decoded = open_decoded(source, descriptor, layer, counter)?;
        let tar = VerifyingReader::new(
            decoded,
            diff_id.clone(),
            None,
            format!("layer {layer} diff_id"),
        );
        Ok(Self { tar, layer })
    }

    /// The tar reader over the uncompressed bytes.
    pub fn archive(&mut self) -> tar::Archive<&mut dyn Read> {
        let reader: &mut dyn Read = &mut self.tar;
        tar::Archive::new(reader)
    }

    /// Skips the rest of the uncompressed stream without inflating it and
    /// checks the compressed digest only (second pass: the first pass
    /// checked the `diff_id` of these same bytes).
    pub fn finish_compressed(self) -> Result<(), UnpackError> {
        let layer = self.layer;
        let decoded = self.tar.into_inner();
        let mut rest: BufReader<Compressed<'_>> = decoded.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|err| layer_error(layer, err))?;
        Ok(())
    }
}

/// Layer `layer`'s blob, counted into `counter`, its compressed digest and
/// size checked as it is read, and decompressed by its magic bytes.
fn open_decoded<'a>(
    source: &dyn ImageSource,
    descriptor: &Descriptor,
    layer: usize,
    counter: &'a AtomicU64,
) -> Result<Decoded<Compressed<'a>>, UnpackError> {
    let raw = source.blob(descriptor)?;
    let compressed = VerifyingReader::new(
        Counting {
            inner: raw,
            counter,
        },
        descriptor.digest.clone(),
        Some(descriptor.size),
        format!("layer {layer} blob"),
    );
    decode(compressed).map_err(|err| layer_error(layer, err))
}

/// An I/O error of layer `layer`, with digest mismatches told apart.
pub fn layer_error(layer: usize, err: io::Error) -> UnpackError {
    match Mismatch::find(&err) {
        Some(Mismatch::Digest {
            what,
            expected,
            actual,
        }) => UnpackError::DigestMismatch {
            what: what.clone(),
            expected: expected.clone(),
            actual: actual.clone(),
        },
        Some(mismatch @ Mismatch::Size { what, .. }) => UnpackError::Invalid {
            what: what.clone(),
            detail: mismatch.to_string(),
        },
        None => UnpackError::Io {
            what: format!("layer {layer}"),
            source: err,
        },
    }
}

/// A layer's entries, headers only; both digests are checked.
pub struct Scanned {
    /// With each entry's number among all the layer's tar entries, which
    /// the second pass counts the same way.
    pub entries: Vec<(usize, Entry)>,
    /// Entry types skipped, with the path, for warnings.
    pub skipped: Vec<(String, String)>,
}

/// First pass over layer `layer`: its headers, verified; with a `spool`,
/// every regular file's content is written there as it passes.
pub fn scan(
    source: &dyn ImageSource,
    descriptor: &Descriptor,
    layer: usize,
    diff_id: &Digest,
    counter: &AtomicU64,
    spool: Option<&Spool<'_>>,
    cancel: &CancellationToken,
) -> Result<Scanned, UnpackError> {
    scan_headers(source, descriptor, layer, diff_id, counter, spool, cancel)
        .map_err(|err| blame_blob(source, descriptor, layer, err))
}

/// A corrupt blob usually breaks the decoder or the tar reader before its
/// digest can be checked at the end: then the digest, not the symptom, is
/// the error to report.
fn blame_blob(
    source: &dyn ImageSource,
    descriptor: &Descriptor,
    layer: usize,
    err: UnpackError,
) -> UnpackError {
    if matches!(
        err,
        UnpackError::DigestMismatch { .. } | UnpackError::UnsafePath { .. }
    ) {
        return err;
    }
    let Ok(blob) = source.blob(descriptor) else {
        return err;
    };
    let reader = VerifyingReader::new(
        blob,
        descriptor.digest.clone(),
        Some(descriptor.size),
        format!("layer {layer} blob"),
    );
    match reader.finish() {
        Err(io) if Mismatch::find(&io).is_some() => layer_error(layer, io),
        _ => err,
    }
}

fn scan_headers(
    source: &dyn ImageSource,
    descriptor: &Descriptor,
    layer: usize,
    diff_id: &Digest,
    counter: &AtomicU64,
    spool: Option<&Spool<'_>>,
    cancel: &CancellationToken,
) -> Result<Scanned, UnpackError> {
    let decoded = open_decoded(source, descriptor, layer, counter)?;
    std::thread::scope(|scope| {
        // Inflating (and the compressed digest) on one core, the tar, the
        // diff_id and the files on another.
        let inflated = pipe::spawn(scope, decoded, |decoded| {
            io::copy(&mut decoded.into_inner(), &mut io::sink()).map(drop)
        });
        let mut tar = VerifyingReader::new(
            inflated,
            diff_id.clone(),
            None,
            format!("layer {layer} diff_id"),
        );
        let scanned = read_entries(&mut tar, layer, spool, cancel)?;
        io::copy(&mut tar, &mut io::sink()).map_err(|err| layer_error(layer, err))?;
        Ok(scanned)
    })
}

fn read_entries(
    tar: &mut dyn Read,
    layer: usize,
    spool: Option<&Spool<'_>>,
    cancel: &CancellationToken,
) -> Result<Scanned, UnpackError> {
    let mut scanned = Scanned {
        entries: Vec::new(),
        skipped: Vec::new(),
    };
    let mut buffer = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|err| layer_error(layer, err))?;
    for (index, entry) in entries.enumerate() {
        if cancel.is_cancelled() {
            return Err(UnpackError::Cancelled);
        }
        let mut entry = entry.map_err(|err| layer_error(layer, err))?;
        match from_tar(&mut entry) {
            Ok(Parsed::Entry(parsed)) => {
                if let (Some(spool), Kind::File { .. }) = (spool, &parsed.kind) {
                    spool.write(layer, index, &mut entry, &parsed, &mut buffer)?;
                }
                scanned.entries.push((index, parsed));
            }
            Ok(Parsed::Skipped(kind)) => scanned.skipped.push((
                String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                kind,
            )),
            Err(bad) => {
                return Err(UnpackError::UnsafePath {
                    layer,
                    path: bad.path,
                    why: bad.why.to_owned(),
                });
            }
        }
    }
    Ok(scanned)
}
