//! Publishing an unpacked image: the [`Publisher`] trait and its two
//! adapters, [`dir::DirPublisher`] (a plain shared directory, atomic rename)
//! and [`cvmfs::CvmfsPublisher`] (`cvmfs_server` transactions or `ingest`).
//!
//! Both lay the tree out the same way under their root:
//!
//! ```text
//! <root>/.images/<manifest hex digest>/      the root filesystem
//! <root>/tags/<registry>/<repo>:<tag>        symlink -> ../../(..)/.images/<hex>
//! ```
//!
//! Images are content-addressed: publishing a digest that is there already
//! writes nothing and answers [`PublishStatus::AlreadyPresent`]. Tag links
//! are relative, so they resolve wherever the root is mounted.
//!
//! Publishers are blocking: they run on the blocking pool, one call per
//! image, and serialise among themselves where their backend needs it.

pub mod batch;
pub mod cvmfs;
pub mod dir;
pub mod tag;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::image::Digest;
use crate::source::ImageSource;
use crate::unpack::{self, ResolvedImage, UnpackError, UnpackOptions, UnpackReport};

pub use tag::{BadTag, TagName};

/// Directory of the images under a publisher's root.
pub const IMAGES_DIR: &str = ".images";
/// Directory of the tag links under a publisher's root.
pub const TAGS_DIR: &str = "tags";

/// The bytes of one image's root filesystem, produced on demand: as a
/// directory tree, or as one tar stream (`cvmfs_server ingest`).
pub trait Content: Send + Sync {
    /// Creates `dest` (which does not exist) with the tree; on error the
    /// caller removes whatever is left at `dest`.
    fn write_dir(&self, dest: &Path) -> Result<UnpackReport, UnpackError>;

    /// Writes the tree as one tar stream to `out`.
    fn write_tar(&self, out: &mut dyn Write) -> Result<UnpackReport, UnpackError>;
}

/// An image from a source, flattened by [`crate::unpack`]; it stops (with
/// [`UnpackError::Cancelled`], nothing left) when `options.cancel` is
/// cancelled.
pub struct ImageContent {
    pub source: Arc<dyn ImageSource>,
    pub image: ResolvedImage,
    pub options: UnpackOptions,
}

impl Content for ImageContent {
    fn write_dir(&self, dest: &Path) -> Result<UnpackReport, UnpackError> {
        unpack::unpack_to_dir(self.source.as_ref(), &self.image, dest, &self.options)
    }

    fn write_tar(&self, out: &mut dyn Write) -> Result<UnpackReport, UnpackError> {
        unpack::unpack_to_tar(self.source.as_ref(), &self.image, out, &self.options)
    }
}

/// One image to publish.
pub struct PublishJob {
    /// The manifest digest: the image's address.
    pub digest: Digest,
    /// The readable link to point at it, if any.
    pub tag: Option<TagName>,
    pub content: Arc<dyn Content>,
}

/// Whether a publish wrote the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStatus {
    /// Unpacked and published by this call (or the batch it was part of).
    Published,
    /// The digest was there already; nothing was unpacked.
    AlreadyPresent,
}

/// Where a published image is, and what it took.
#[derive(Debug, Clone)]
pub struct Published {
    pub status: PublishStatus,
    /// The root filesystem, as clients see it.
    pub path: PathBuf,
    /// The tag link, as clients see it.
    pub tag_path: Option<PathBuf>,
    /// What the unpack did; all zero when the image was present.
    pub report: UnpackReport,
}

/// Why a publish or a removal failed. Nothing partial is left published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `cvmfs_server` refused or failed.
    #[error("cvmfs_server {command}: {detail}")]
    Cvmfs { command: String, detail: String },
    /// An image published in the same transaction failed it.
    #[error("the transaction this image was part of failed: {0}")]
    Batch(String),
    #[error("shutting down")]
    Cancelled,
}

impl PublishError {
    /// A short stable name, for metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Unpack(_) => "unpack",
            Self::Io { .. } => "io",
            Self::Cvmfs { .. } => "cvmfs",
            Self::Batch(_) => "batch",
            Self::Cancelled => "cancelled",
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Where images are published.
pub trait Publisher: Send + Sync {
    /// What it publishes into, for logs (`dir:/srv/images`, `cvmfs:repo`).
    fn describe(&self) -> String;

    /// Where the image `digest` is (or would be), as clients see it.
    fn image_path(&self, digest: &Digest) -> PathBuf;

    /// Where the tag link `tag` is, as clients see it.
    fn tag_path(&self, tag: &TagName) -> PathBuf;

    /// Whether the image `digest` is published.
    fn contains(&self, digest: &Digest) -> bool;

    /// Publishes `job`; possibly in one transaction with others queued at
    /// the same time.
    fn publish(&self, job: PublishJob) -> Result<Published, PublishError>;

    /// Removes the images `digests` and the tag links that point at them.
    fn remove(&self, digests: &[Digest]) -> Result<(), PublishError>;

    /// The answer for `job`: where its image and tag link are.
    fn published(
        &self,
        job: &PublishJob,
        status: PublishStatus,
        report: UnpackReport,
    ) -> Published {
        Published {
            status,
            path: self.image_path(&job.digest),
            tag_path: job.tag.as_ref().map(|tag| self.tag_path(tag)),
            report,
        }
    }
}

/// The relative target of the tag link `tag` (under `tags/`) to the image
/// `digest` (under `.images/`).
pub fn tag_target(tag: &TagName, digest: &Digest) -> PathBuf {
    let mut target = PathBuf::new();
    // One `..` for `tags/` and one per directory of the tag.
    for _ in 0..tag.depth() {
        target.push("..");
    }
    target.push(IMAGES_DIR);
    target.push(digest.hex());
    target
}

/// The digest a tag link's `target` names, if it is one of ours.
pub fn digest_of_target(target: &Path) -> Option<Digest> {
    let name = target.file_name()?.to_str()?;
    let parent = target.parent()?.file_name()?;
    if parent != IMAGES_DIR {
        return None;
    }
    format!("sha256:{name}").parse().ok()
}

/// Replaces (or creates) the symlink `link` -> `target` atomically: a
/// temporary link beside it, renamed over it.
pub(crate) fn replace_symlink(link: &Path, target: &Path) -> Result<(), PublishError> {
    if std::fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let parent = link.parent().expect("tag links have a parent");
    std::fs::create_dir_all(parent)
        .map_err(PublishError::io(format!("creating {}", parent.display())))?;
    let name = link.file_name().expect("tag links have a name");
    let temp = parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(target, &temp)
        .map_err(PublishError::io(format!("creating {}", temp.display())))?;
    std::fs::rename(&temp, link).map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        PublishError::Io {
            what: format!("renaming {} over {}", temp.display(), link.display()),
            source,
        }
    })
}

/// Removes every tag link under `tags` that points at one of `digests`,
/// and the directories that leaves empty.
pub(crate) fn remove_tag_links(tags: &Path, digests: &[Digest]) -> Result<(), PublishError> {
    fn walk(dir: &Path, digests: &[Digest]) -> std::io::Result<bool> {
        let mut empty = true;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                let target = std::fs::read_link(&path)?;
                if digest_of_target(&target).is_some_and(|d| digests.contains(&d)) {
                    std::fs::remove_file(&path)?;
                    continue;
                }
            } else if kind.is_dir() && walk(&path, digests)? {
                std::fs::remove_dir(&path)?;
                continue;
            }
            empty = false;
        }
        Ok(empty)
    }
    match walk(tags, digests) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PublishError::Io {
            what: format!("removing tag links under {}", tags.display()),
            source,
        }),
    }
}

/// Removes `path` and everything under it; absent is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<(), PublishError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PublishError::Io {
            what: format!("removing {}", path.display()),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
    }

    #[test]
    fn tag_targets_climb_out_of_the_tag_directories() {
        let tag: TagName = "ghcr.io/org/img:pr-1".parse().unwrap();
        let target = tag_target(&tag, &digest());
        assert_eq!(target, Path::new("../../../.images").join("ab".repeat(32)));
        assert_eq!(digest_of_target(&target), Some(digest()));
        let flat: TagName = "img:1".parse().unwrap();
        assert_eq!(
            tag_target(&flat, &digest()),
            Path::new("../.images").join("ab".repeat(32))
        );
    }

    #[test]
    fn foreign_link_targets_name_no_digest() {
        assert_eq!(digest_of_target(Path::new("/etc/passwd")), None);
        assert_eq!(digest_of_target(Path::new("../other/abc")), None);
    }

    #[test]
    fn removing_tag_links_keeps_links_to_other_images() {
        let root = tempfile::tempdir().unwrap();
        let tags = root.path().join(TAGS_DIR);
        let other: Digest = format!("sha256:{}", "cd".repeat(32)).parse().unwrap();
        let a: TagName = "r/a:1".parse().unwrap();
        let b: TagName = "r/b:1".parse().unwrap();
        let c: TagName = "s/c:1".parse().unwrap();
        replace_symlink(&tags.join(a.as_path()), &tag_target(&a, &digest())).unwrap();
        replace_symlink(&tags.join(b.as_path()), &tag_target(&b, &other)).unwrap();
        replace_symlink(&tags.join(c.as_path()), &tag_target(&c, &digest())).unwrap();
        remove_tag_links(&tags, &[digest()]).unwrap();
        assert!(tags.join("r/b:1").symlink_metadata().is_ok());
        assert!(tags.join("r/a:1").symlink_metadata().is_err());
        assert!(!tags.join("s").exists(), "emptied directories go too");
    }
}
