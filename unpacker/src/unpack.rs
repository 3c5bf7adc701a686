//! One image, start to finish: resolve the manifest for a platform, verify
//! every blob while streaming it, and flatten the layers into a directory
//! or into one tar stream (for `cvmfs_server ingest`).
//!
//! The entry points the CLI, the publishers and the service call.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::apptainer;
use crate::flatten::plan::Tree;
use crate::flatten::spool::{self, Spool};
use crate::flatten::{self, Counters, LayerRefs, write_dir, write_tar};
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
    /// Live counters of this unpack, for progress bars and metrics.
    pub progress: Arc<Counters>,
    /// Stops the unpack (with [`UnpackError::Cancelled`], nothing left at
    /// the destination) when cancelled.
    pub cancel: CancellationToken,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            apptainer: false,
            parallel_layers: default_parallel_layers(),
            progress: Arc::default(),
            cancel: CancellationToken::new(),
        }
    }
}

/// Layers in flight at once: at least 4, so that one big layer does not
/// leave the other cores idle (each layer uses two threads: inflating,
/// and writing its files), at most 8 (buffers are ~8 MiB per layer).
fn default_parallel_layers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get().clamp(4, 8))
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
    source: &dyn ImageSource,
    options: &UnpackOptions,
) -> Result<ResolvedImage, UnpackError> {
    crate::resolve::resolve(source, options)
}

/// Flattens `image`'s layers into `dest`, which must not exist; on error
/// nothing is left at `dest`.
pub fn unpack_to_dir(
    source: &dyn ImageSource,
    image: &ResolvedImage,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let started = Instant::now();
    if dest.symlink_metadata().is_ok() {
        return Err(UnpackError::Invalid {
            what: dest.display().to_string(),
            detail: "already exists".into(),
        });
    }
    let staging = Staging::create(dest, "unpacking")?;
    let spool_dir = Staging::create(dest, "spool")?;
    let layers = layer_refs(source, image);
    let counters = &options.progress;
    let spool = Spool::new(&spool_dir.path, counters)?;
    let tree = flatten::plan(&layers, options, Some(&spool))?;
    let (tree, blanked) = finish_tree(tree, image, options);
    let planned = started.elapsed();
    write_dir::write(&tree, &staging.path, &spool, options)?;
    if options.apptainer {
        apptainer::write_extras(&staging.path, &image.config, &blanked)?;
    }
    staging.publish(dest)?;
    let placed = started.elapsed();
    drop(spool_dir);
    tracing::debug!(
        read_and_spooled = ?planned,
        placed = ?(placed - planned),
        spool_removed = ?(started.elapsed() - placed),
        "unpack phases"
    );
    Ok(report(image, counters, started))
}

/// Writes the flattened tree of `image` as one tar stream to `out` (what
/// `cvmfs_server ingest --tar_file -` reads), without a scratch copy.
pub fn unpack_to_tar(
    source: &dyn ImageSource,
    image: &ResolvedImage,
    out: &mut dyn Write,
    options: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let started = Instant::now();
    let layers = layer_refs(source, image);
    let counters = &options.progress;
    let tree = flatten::plan(&layers, options, None)?;
    let (tree, blanked) = finish_tree(tree, image, options);
    write_tar::write(&layers, &tree, out, options, |builder| {
        if options.apptainer {
            apptainer::append_extras(builder, &image.config, &blanked)
        } else {
            Ok(())
        }
    })?;
    Ok(report(image, counters, started))
}

fn layer_refs<'a>(source: &'a dyn ImageSource, image: &'a ResolvedImage) -> LayerRefs<'a> {
    LayerRefs {
        source,
        descriptors: &image.manifest.layers,
        diff_ids: &image.config.rootfs.diff_ids,
    }
}

/// The tree as published, and the credential files `--apptainer` emptied.
fn finish_tree(
    mut tree: Tree,
    image: &ResolvedImage,
    options: &UnpackOptions,
) -> (Tree, Vec<apptainer::Blanked>) {
    let blanked = if options.apptainer {
        apptainer::adjust(&mut tree, &image.config)
    } else {
        Vec::new()
    };
    (tree, blanked)
}

fn report(image: &ResolvedImage, counters: &Counters, started: Instant) -> UnpackReport {
    UnpackReport {
        manifest_digest: Some(image.manifest_digest.clone()),
        bytes_read: counters.bytes_read.load(Ordering::Relaxed),
        bytes_written: counters.bytes_written.load(Ordering::Relaxed),
        files_written: counters.files_written.load(Ordering::Relaxed),
        duration: started.elapsed(),
    }
}

/// A directory beside the destination, removed when dropped unless it was
/// published as the destination (by a rename, at the end).
struct Staging {
    path: PathBuf,
    published: bool,
}

impl Staging {
    /// `.<dest name>.<purpose>-<pid>-<nanos>` beside `dest`.
    fn create(dest: &Path, purpose: &str) -> Result<Self, UnpackError> {
        let name = dest.file_name().ok_or_else(|| UnpackError::Invalid {
            what: dest.display().to_string(),
            detail: "not a directory name".into(),
        })?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut staging_name = std::ffi::OsString::from(".");
        staging_name.push(name);
        staging_name.push(format!(".{purpose}-{}-{nanos}", std::process::id()));
        let path = dest.with_file_name(staging_name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| UnpackError::Io {
                what: format!("creating {}", path.display()),
                source,
            })?;
        // Clear a setgid bit inherited from the parent: files made inside
        // must belong to the caller's group (see write_dir::write_file).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| UnpackError::Io {
                what: format!("chmod {}", path.display()),
                source,
            },
        )?;
        Ok(Self {
            path,
            published: false,
        })
    }

    fn publish(mut self, dest: &Path) -> Result<(), UnpackError> {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            &self.path,
            rustix::fs::CWD,
            dest,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|errno| UnpackError::Io {
            what: format!("renaming {} to {}", self.path.display(), dest.display()),
            source: errno.into(),
        })?;
        self.published = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published
            && let Err(err) = spool::remove_tree(&self.path)
        {
            tracing::warn!(path = %self.path.display(), %err, "could not remove a failed unpack");
        }
    }
}
