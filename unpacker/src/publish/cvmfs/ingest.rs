//! Ingest mode of the `cvmfs` publisher: each image is one `cvmfs_server
//! ingest --tar_file -` fed the flattened tar stream (no scratch copy on the
//! stratum 0), and the batch's tag links follow in one small ingest. A
//! stream cut by a failed unpack makes the ingest fail: nothing is
//! published.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use super::CvmfsPublisher;
use crate::image::Digest;
use crate::publish::{
    IMAGES_DIR, PublishError, PublishJob, PublishStatus, Published, Publisher, TAGS_DIR, TagName,
    tag_target,
};
use crate::unpack::UnpackReport;

impl CvmfsPublisher {
    pub(super) fn ingest_batch(&self, jobs: &[PublishJob]) -> Vec<Result<Published, PublishError>> {
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let result = if self.shutdown.is_cancelled() {
                Err(PublishError::Cancelled)
            } else if self.contains(&job.digest) {
                Ok(self.published(job, PublishStatus::AlreadyPresent, UnpackReport::default()))
            } else {
                self.ingest_image(job)
                    .map(|report| self.published(job, PublishStatus::Published, report))
            };
            results.push(result);
        }
        let links: Vec<(&TagName, &Digest)> = jobs
            .iter()
            .zip(&results)
            .filter(|(job, result)| result.is_ok() && !self.tag_is(&job.tag, &job.digest))
            .filter_map(|(job, _)| job.tag.as_ref().map(|tag| (tag, &job.digest)))
            .collect();
        if !links.is_empty()
            && let Err(err) = self.ingest_links(&links)
        {
            // The images are out; only their readable links are missing.
            tracing::error!(error = %err, "ingesting tag links failed");
        }
        results
    }

    /// `cvmfs_server ingest` of one image's tar stream.
    fn ingest_image(&self, job: &PublishJob) -> Result<UnpackReport, PublishError> {
        let base_dir = self.relative(&Path::new(IMAGES_DIR).join(job.digest.hex()));
        let base_dir = base_dir.to_string_lossy();
        let mut args = vec!["ingest", "--tar_file", "-", "--base_dir", &base_dir];
        if self.config.nested_catalogs {
            args.push("--catalog");
        }
        args.push(&self.config.repository);
        let mut child = self
            .command()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| PublishError::Cvmfs {
                command: args.join(" "),
                detail: format!("running {}: {err}", self.config.server.join(" ")),
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let written = job.content.write_tar(&mut stdin);
        drop(stdin);
        if written.is_err() {
            // A cut stream must not be published: make sure the tool stops.
            let _ = child.kill();
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = child
            .wait()
            .map_err(PublishError::io("waiting for cvmfs_server ingest"))?;
        match written {
            Err(err) => {
                self.abort_if_open();
                Err(err.into())
            }
            Ok(_) if !status.success() => {
                self.abort_if_open();
                Err(PublishError::Cvmfs {
                    command: args.join(" "),
                    detail: format!("{status}: {}", stderr.trim()),
                })
            }
            Ok(report) => Ok(report),
        }
    }

    /// After a failed ingest, the tool may have left its transaction open.
    fn abort_if_open(&self) {
        let _ = self.cvmfs_server(&["abort", "-f", &self.config.repository]);
    }

    /// One ingest of a tar holding the tag links of a batch.
    fn ingest_links(&self, links: &[(&TagName, &Digest)]) -> Result<(), PublishError> {
        let mut builder = tar::Builder::new(Vec::new());
        for (tag, digest) in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, tag.as_path(), tag_target(tag, digest))
                .map_err(PublishError::io("building the tag link tar"))?;
        }
        let tar = builder
            .into_inner()
            .map_err(PublishError::io("building the tag link tar"))?;
        let base_dir = self.relative(Path::new(TAGS_DIR));
        let base_dir = base_dir.to_string_lossy();
        let args = [
            "ingest",
            "--tar_file",
            "-",
            "--base_dir",
            &base_dir,
            &self.config.repository,
        ];
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(PublishError::io("running cvmfs_server ingest"))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        std::io::Write::write_all(&mut stdin, &tar)
            .map_err(PublishError::io("feeding cvmfs_server ingest"))?;
        drop(stdin);
        let output = child
            .wait_with_output()
            .map_err(PublishError::io("waiting for cvmfs_server ingest"))?;
        if output.status.success() {
            return Ok(());
        }
        self.abort_if_open();
        Err(PublishError::Cvmfs {
            command: args.join(" "),
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}
