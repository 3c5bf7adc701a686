//! One image, start to finish: resolve the manifest for a platform, verify
//! every blob while streaming it, and flatten the layers into a directory
//! or into one tar stream (for `cvmfs_server ingest`).
//!
//! The entry points the CLI, the publishers and the service call.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::image::{Digest, ImageConfig, Manifest, Platform};
use crate::source::{ImageSource, SourceError};

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Which image of a multi-platform index.
    pub platform: Platform,
    /// Apply the Apptainer-on-CVMFS fix-ups (world-readable, `.singularity.d`,
    /// mount points). Off: the tree is exactly what the layers say.
    pub apptainer: bool,
    /// Layers read and inflated at once.
    pub parallel_layers: usize,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            apptainer: false,
            parallel_layers: 4,
        }
    }
}

/// The image chosen for the platform, with its config.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The content address of the result.
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

/// What an unpack did, for results, logs and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct UnpackReport {
    pub manifest_digest: Option<Digest>,
    /// Compressed bytes read from the source.
    pub bytes_read: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
    pub files_written: u64,
    pub duration: Duration,
}

/// Why an unpack failed. Nothing is left at the destination when it does.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("no image for platform {platform}")]
    NoMatchingPlatform { platform: String },
    #[error("layer {layer}: entry {path:?} would write outside the destination: {why}")]
    UnsafePath {
        layer: usize,
        path: String,
        why: String,
    },
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

/// Picks the image for `options.platform` and reads its config, verifying
/// the manifest and config digests.
pub fn resolve(
    _source: &dyn ImageSource,
    _options: &UnpackOptions,
) -> Result<ResolvedImage, UnpackError> {
    Err(UnpackError::Invalid {
        what: "resolve".into(),
        detail: "not implemented yet".into(),
    })
}

/// Flattens `image`'s layers into `dest`, which must not exist; on error
/// nothing is left at `dest`.
pub fn unpack_to_dir(
    _source: &dyn ImageSource,
    _image: &ResolvedImage,
    _dest: &Path,
    _options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    Err(UnpackError::Invalid {
        what: "unpack".into(),
        detail: "not implemented yet".into(),
    })
}

/// Writes the flattened tree of `image` as one tar stream to `out` (what
/// `cvmfs_server ingest --tar_file -` reads), without a scratch copy.
pub fn unpack_to_tar(
    _source: &dyn ImageSource,
    _image: &ResolvedImage,
    _out: &mut dyn Write,
    _options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    Err(UnpackError::Invalid {
        what: "unpack".into(),
        detail: "not implemented yet".into(),
    })
}
