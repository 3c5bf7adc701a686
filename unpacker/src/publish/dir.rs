//! The `dir` publisher: images in a plain (shared) directory.
//!
//! An image is unpacked into `.images/.tmp-<hex>-<pid>-<n>` beside its
//! final place and renamed to `.images/<hex>` in one step, so readers see
//! the whole tree or nothing; a failed unpack leaves nothing (its temporary
//! directory is removed). Removal renames the tree to `.images/.trash-...`
//! first, for the same reason. Leftovers of a crash (`.tmp-*`, `.trash-*`)
//! are removed when the publisher opens.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use super::{
    IMAGES_DIR, PublishError, PublishJob, PublishStatus, Published, Publisher, TAGS_DIR, TagName,
    remove_tag_links, remove_tree, replace_symlink, tag_target,
};
use crate::image::Digest;
use crate::unpack::UnpackReport;

const TEMP_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";

/// Publishes into `<root>/.images` and `<root>/tags`.
pub struct DirPublisher {
    root: PathBuf,
    /// Stops new work at shutdown; an unpack under way finishes or fails.
    shutdown: CancellationToken,
    /// Numbers temporary names, unique within this process.
    counter: AtomicU64,
    /// Tag links and removals change shared directories: one at a time.
    links: Mutex<()>,
}

impl DirPublisher {
    /// Opens (creating) `root` and cleans what a crash left in it.
    pub fn open(root: &Path, shutdown: CancellationToken) -> Result<Self, PublishError> {
        let images = root.join(IMAGES_DIR);
        std::fs::create_dir_all(&images)
            .map_err(PublishError::io(format!("creating {}", images.display())))?;
        for dir in [root, images.as_path()] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(PublishError::io(format!("chmod {}", dir.display())))?;
        }
        for entry in std::fs::read_dir(&images)
            .map_err(PublishError::io(format!("listing {}", images.display())))?
            .flatten()
        {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) || name.starts_with(TRASH_PREFIX) {
                tracing::info!(path = %entry.path().display(), "removing a leftover of an earlier run");
                remove_tree(&entry.path())?;
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            shutdown,
            counter: AtomicU64::new(0),
            links: Mutex::new(()),
        })
    }

    fn images(&self) -> PathBuf {
        self.root.join(IMAGES_DIR)
    }

    fn scratch(&self, prefix: &str, digest: &Digest) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.images().join(format!(
            "{prefix}{}-{}-{n}",
            digest.hex(),
            std::process::id()
        ))
    }

    fn link_tag(&self, tag: &Option<TagName>, digest: &Digest) -> Result<(), PublishError> {
        if let Some(tag) = tag {
            let _links = self.links.lock().expect("links lock poisoned");
            let link = self.root.join(TAGS_DIR).join(tag.as_path());
            replace_symlink(&link, &tag_target(tag, digest))?;
        }
        Ok(())
    }
}

impl Publisher for DirPublisher {
    fn describe(&self) -> String {
        format!("dir:{}", self.root.display())
    }

    fn image_path(&self, digest: &Digest) -> PathBuf {
        self.images().join(digest.hex())
    }

    fn tag_path(&self, tag: &TagName) -> PathBuf {
        self.root.join(TAGS_DIR).join(tag.as_path())
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.image_path(digest).is_dir()
    }

    fn publish(&self, job: PublishJob) -> Result<Published, PublishError> {
        let target = self.image_path(&job.digest);
        if target.is_dir() {
            self.link_tag(&job.tag, &job.digest)?;
            return Ok(self.published(
                &job,
                PublishStatus::AlreadyPresent,
                UnpackReport::default(),
            ));
        }
        if self.shutdown.is_cancelled() {
            return Err(PublishError::Cancelled);
        }
        let temp = self.scratch(TEMP_PREFIX, &job.digest);
        let report = match job.content.write_dir(&temp) {
            Ok(report) => report,
            Err(err) => {
                remove_tree(&temp)?;
                return Err(err.into());
            }
        };
        let status = match std::fs::rename(&temp, &target) {
            Ok(()) => PublishStatus::Published,
            // Someone else published the same digest meanwhile.
            Err(_) if target.is_dir() => {
                remove_tree(&temp)?;
                PublishStatus::AlreadyPresent
            }
            Err(source) => {
                remove_tree(&temp)?;
                return Err(PublishError::Io {
                    what: format!("renaming {} to {}", temp.display(), target.display()),
                    source,
                });
            }
        };
        self.link_tag(&job.tag, &job.digest)?;
        Ok(self.published(&job, status, report))
    }

    fn remove(&self, digests: &[Digest]) -> Result<(), PublishError> {
        let _links = self.links.lock().expect("links lock poisoned");
        remove_tag_links(&self.root.join(TAGS_DIR), digests)?;
        for digest in digests {
            let target = self.image_path(digest);
            let trash = self.scratch(TRASH_PREFIX, digest);
            match std::fs::rename(&target, &trash) {
                Ok(()) => remove_tree(&trash)?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(PublishError::Io {
                        what: format!("moving {} aside", target.display()),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}
