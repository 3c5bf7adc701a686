//! The `cvmfs` publisher: images in a CVMFS repository on its stratum 0.
//!
//! Transaction mode (the default): `cvmfs_server transaction <repo>` ->
//! unpack each queued image into `/cvmfs/<repo>/<subdir>/.images/<hex>`
//! and point its tag link at it -> `cvmfs_server publish <repo>`. An image
//! that fails is removed before the publish, so the others of its batch
//! still go out; a failed publish (or shutdown) ends in `cvmfs_server abort
//! -f <repo>`, leaving the repository as it was.
//!
//! Ingest mode: `cvmfs_server ingest --tar_file - --base_dir
//! <subdir>/.images/<hex> <repo>` fed the flattened tar stream (no scratch
//! copy), one per image, then one small ingest of the batch's tag links.
//!
//! CVMFS allows one transaction at a time per repository: calls go through
//! a [`Combiner`], so images that queue while a transaction runs are
//! published together in the next one.

mod ingest;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tokio_util::sync::CancellationToken;

use super::batch::Combiner;
use super::{
    IMAGES_DIR, PublishError, PublishJob, PublishStatus, Published, Publisher, TAGS_DIR, TagName,
    remove_tag_links, remove_tree, replace_symlink, tag_target,
};
use crate::image::Digest;
use crate::unpack::UnpackReport;

/// How to reach the repository.
#[derive(Debug, Clone)]
pub struct CvmfsConfig {
    /// Repository name, e.g. `images.example.org`.
    pub repository: String,
    /// The `cvmfs_server` command: a program and its leading arguments
    /// (e.g. `sudo -u cvmfs cvmfs_server`).
    pub server: Vec<String>,
    /// Where repositories are mounted: `/cvmfs` (on the stratum 0 the
    /// writable mount during a transaction; the same path on clients).
    pub mount_root: PathBuf,
    /// Directory inside the repository the images go to; empty = its root.
    pub subdir: PathBuf,
    /// Lease only `<repo>/<subdir>` in `transaction` (gateway publishers).
    pub lease_subdir: bool,
    /// Publish with `cvmfs_server ingest` of a tar stream.
    pub ingest: bool,
    /// Run `cvmfs_server gc -f` after removals.
    pub gc: bool,
    /// Make each image a nested catalog (`.cvmfscatalog` at its root), so
    /// the root catalog stays small and removing an image drops a catalog.
    pub nested_catalogs: bool,
    /// Most images published in one transaction.
    pub max_batch: usize,
}

/// Publishes into a CVMFS repository with `cvmfs_server`.
pub struct CvmfsPublisher {
    config: CvmfsConfig,
    combiner: Combiner<PublishJob, Result<Published, PublishError>>,
    /// Checked between steps: a transaction open at shutdown is aborted.
    shutdown: CancellationToken,
}

impl CvmfsPublisher {
    pub fn new(config: CvmfsConfig, shutdown: CancellationToken) -> Self {
        Self {
            combiner: Combiner::new(config.max_batch),
            config,
            shutdown,
        }
    }

    /// Images waiting for the next transaction.
    pub fn queued(&self) -> usize {
        self.combiner.queued()
    }

    /// `/cvmfs/<repo>/<subdir>`.
    fn base(&self) -> PathBuf {
        self.config
            .mount_root
            .join(&self.config.repository)
            .join(&self.config.subdir)
    }

    /// A path inside the repository, relative to its root.
    fn relative(&self, rest: &Path) -> PathBuf {
        self.config.subdir.join(rest)
    }

    fn lease(&self) -> String {
        if self.config.lease_subdir && !self.config.subdir.as_os_str().is_empty() {
            format!(
                "{}/{}",
                self.config.repository,
                self.config.subdir.display()
            )
        } else {
            self.config.repository.clone()
        }
    }

    /// The `cvmfs_server` command, ready for its arguments.
    fn command(&self) -> Command {
        let (program, leading) = self
            .config
            .server
            .split_first()
            .expect("the cvmfs_server command is not empty");
        let mut command = Command::new(program);
        command.args(leading);
        command
    }

    fn cvmfs_server(&self, args: &[&str]) -> Result<(), PublishError> {
        let output = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| PublishError::Cvmfs {
                command: args.join(" "),
                detail: format!("running {}: {err}", self.config.server.join(" ")),
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(PublishError::Cvmfs {
            command: args.join(" "),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }

    fn abort(&self) {
        if let Err(err) = self.cvmfs_server(&["abort", "-f", &self.config.repository]) {
            tracing::error!(error = %err, "aborting the transaction failed");
        }
    }

    /// Whether `tag` already points at `digest`.
    fn tag_is(&self, tag: &Option<TagName>, digest: &Digest) -> bool {
        tag.as_ref().is_none_or(|tag| {
            std::fs::read_link(self.tag_path(tag)).is_ok_and(|t| t == tag_target(tag, digest))
        })
    }

    fn run_batch(&self, jobs: Vec<PublishJob>) -> Vec<Result<Published, PublishError>> {
        // Nothing to write: no transaction at all.
        if jobs
            .iter()
            .all(|job| self.contains(&job.digest) && self.tag_is(&job.tag, &job.digest))
        {
            return jobs
                .iter()
                .map(|job| {
                    Ok(self.published(job, PublishStatus::AlreadyPresent, UnpackReport::default()))
                })
                .collect();
        }
        if self.shutdown.is_cancelled() {
            return jobs.iter().map(|_| Err(PublishError::Cancelled)).collect();
        }
        tracing::info!(images = jobs.len(), repository = %self.config.repository, ingest = self.config.ingest, "publishing");
        if self.config.ingest {
            self.ingest_batch(&jobs)
        } else {
            self.transaction_batch(&jobs)
        }
    }

    fn transaction_batch(&self, jobs: &[PublishJob]) -> Vec<Result<Published, PublishError>> {
        if let Err(err) = self.cvmfs_server(&["transaction", &self.lease()]) {
            // Not ours to abort: the transaction may be someone else's.
            let text = err.to_string();
            return jobs
                .iter()
                .map(|_| Err(PublishError::Batch(text.clone())))
                .collect();
        }
        // Distinct images unpack in parallel; a repeated digest waits for
        // its first copy and then finds it present.
        let first = |index: usize| !jobs[..index].iter().any(|j| j.digest == jobs[index].digest);
        let mut results: Vec<Option<Result<Published, PublishError>>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..jobs.len())
                    .map(|index| {
                        first(index)
                            .then(|| scope.spawn(move || self.write_in_transaction(&jobs[index])))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| {
                        handle.map(|handle| {
                            handle.join().unwrap_or_else(|_| {
                                Err(PublishError::Batch("an unpack panicked".into()))
                            })
                        })
                    })
                    .collect()
            });
        for (index, result) in results.iter_mut().enumerate() {
            if result.is_none() {
                *result = Some(self.write_in_transaction(&jobs[index]));
            }
        }
        let results: Vec<Result<Published, PublishError>> = results
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect();
        let failed = |why: String| {
            jobs.iter()
                .map(|_| Err(PublishError::Batch(why.clone())))
                .collect()
        };
        if self.shutdown.is_cancelled() {
            self.abort();
            return jobs.iter().map(|_| Err(PublishError::Cancelled)).collect();
        }
        if results.iter().all(Result::is_err) {
            self.abort();
            return results;
        }
        if let Err(err) = self.cvmfs_server(&["publish", &self.config.repository]) {
            self.abort();
            return failed(err.to_string());
        }
        results
    }

    /// Writes one image (and its tag link) inside the open transaction;
    /// on failure removes what it wrote.
    fn write_in_transaction(&self, job: &PublishJob) -> Result<Published, PublishError> {
        let target = self.image_path(&job.digest);
        let status = if target.is_dir() {
            PublishStatus::AlreadyPresent
        } else {
            PublishStatus::Published
        };
        let mut report = UnpackReport::default();
        if status == PublishStatus::Published {
            if self.shutdown.is_cancelled() {
                return Err(PublishError::Cancelled);
            }
            let images = self.base().join(IMAGES_DIR);
            std::fs::create_dir_all(&images)
                .map_err(PublishError::io(format!("creating {}", images.display())))?;
            let written = job.content.write_dir(&target).map_err(PublishError::from);
            let written = written.and_then(|report| {
                if self.config.nested_catalogs {
                    let marker = target.join(".cvmfscatalog");
                    std::fs::write(&marker, b"")
                        .map_err(PublishError::io(format!("creating {}", marker.display())))?;
                }
                Ok(report)
            });
            report = match written {
                Ok(report) => report,
                Err(err) => {
                    remove_tree(&target)?;
                    return Err(err);
                }
            };
        }
        if let Some(tag) = &job.tag
            && let Err(err) = replace_symlink(&self.tag_path(tag), &tag_target(tag, &job.digest))
        {
            if status == PublishStatus::Published {
                remove_tree(&target)?;
            }
            return Err(err);
        }
        Ok(self.published(job, status, report))
    }
}

impl Publisher for CvmfsPublisher {
    fn describe(&self) -> String {
        format!(
            "cvmfs:{}/{}",
            self.config.repository,
            self.config.subdir.display()
        )
    }

    fn image_path(&self, digest: &Digest) -> PathBuf {
        self.base().join(IMAGES_DIR).join(digest.hex())
    }

    fn tag_path(&self, tag: &TagName) -> PathBuf {
        self.base().join(TAGS_DIR).join(tag.as_path())
    }

    fn contains(&self, digest: &Digest) -> bool {
        self.image_path(digest).is_dir()
    }

    fn publish(&self, job: PublishJob) -> Result<Published, PublishError> {
        self.combiner.submit(job, |jobs| self.run_batch(jobs))
    }

    /// One transaction removing the trees and their tag links, then
    /// `cvmfs_server gc -f` when configured.
    fn remove(&self, digests: &[Digest]) -> Result<(), PublishError> {
        self.combiner.exclusive(|| {
            let present: Vec<&Digest> = digests.iter().filter(|d| self.contains(d)).collect();
            if present.is_empty() {
                return Ok(());
            }
            self.cvmfs_server(&["transaction", &self.lease()])?;
            let removed = remove_tag_links(&self.base().join(TAGS_DIR), digests).and_then(|()| {
                present
                    .iter()
                    .try_for_each(|digest| remove_tree(&self.image_path(digest)))
            });
            if let Err(err) =
                removed.and_then(|()| self.cvmfs_server(&["publish", &self.config.repository]))
            {
                self.abort();
                return Err(err);
            }
            if self.config.gc
                && let Err(err) = self.cvmfs_server(&["gc", "-f", &self.config.repository])
            {
                // The images are gone from the catalog; gc runs again next time.
                tracing::warn!(error = %err, "garbage collection failed");
            }
            Ok(())
        })
    }
}
