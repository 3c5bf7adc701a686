//! Support for the publisher tests: a generated image content (that can
//! fail half-way or wait at a gate), and the stand-in `cvmfs_server`
//! (tests/fixtures/cvmfs_server) on a temporary `/cvmfs`.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gha_unpacker::image::Digest;
use gha_unpacker::publish::cvmfs::CvmfsConfig;
use gha_unpacker::publish::{Content, PublishJob};
use gha_unpacker::unpack::{UnpackError, UnpackReport};

/// A tree of a few files; fails after writing some when `fail` is set;
/// blocks in `write_dir` until released when `gate` is set.
pub struct Tree {
    pub name: &'static str,
    pub fail: bool,
    pub gate: Option<Arc<Mutex<()>>>,
    pub calls: AtomicUsize,
}

impl Tree {
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            fail: false,
            gate: None,
            calls: AtomicUsize::new(0),
        })
    }

    pub fn failing(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            fail: true,
            ..Arc::into_inner(Self::new(name)).unwrap()
        })
    }

    pub fn gated(name: &'static str, gate: Arc<Mutex<()>>) -> Arc<Self> {
        Arc::new(Self {
            gate: Some(gate),
            ..Arc::into_inner(Self::new(name)).unwrap()
        })
    }

    fn failure(&self) -> UnpackError {
        UnpackError::DigestMismatch {
            what: format!("{} layer 1", self.name),
            expected: Digest::of(b"expected"),
            actual: Digest::of(b"actual"),
        }
    }
}

impl Content for Tree {
    fn write_dir(&self, dest: &Path) -> Result<UnpackReport, UnpackError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            drop(gate.lock().unwrap());
        }
        let io = |source| UnpackError::Io {
            what: dest.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dest.join("etc")).map_err(io)?;
        std::fs::write(dest.join("etc/name"), self.name).map_err(io)?;
        if self.fail {
            return Err(self.failure());
        }
        std::os::unix::fs::symlink("etc/name", dest.join("name")).map_err(io)?;
        Ok(UnpackReport {
            bytes_written: self.name.len() as u64,
            files_written: 2,
            ..Default::default()
        })
    }

    fn write_tar(&self, out: &mut dyn Write) -> Result<UnpackReport, UnpackError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let io = |source| UnpackError::Io {
            what: "tar".into(),
            source,
        };
        let mut builder = tar::Builder::new(out);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_data(&mut header, "etc", std::io::empty())
            .map_err(io)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(self.name.len() as u64);
        builder
            .append_data(&mut header, "etc/name", self.name.as_bytes())
            .map_err(io)?;
        if self.fail {
            // Half a stream: the ingest must not publish it.
            return Err(self.failure());
        }
        builder.finish().map_err(io)?;
        Ok(UnpackReport {
            files_written: 1,
            ..Default::default()
        })
    }
}

pub fn digest(name: &str) -> Digest {
    Digest::of(name.as_bytes())
}

pub fn job(name: &'static str, content: Arc<Tree>) -> PublishJob {
    PublishJob {
        digest: digest(name),
        tag: Some(format!("registry.test/{name}:v1").parse().unwrap()),
        content,
    }
}

pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The stand-in, pointed at a temporary `/cvmfs` through `env`.
pub struct StandIn {
    pub dir: tempfile::TempDir,
}

impl StandIn {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The command that runs the stand-in, failing `fail` if given.
    pub fn command(&self, fail: Option<&str>) -> Vec<String> {
        let script = gha_testkit::paths::repo_root().join("tests/fixtures/cvmfs_server");
        let mut command = vec![
            "env".to_string(),
            format!("CVMFS_STANDIN_ROOT={}", self.mount_root().display()),
        ];
        command.extend(fail.map(|f| format!("CVMFS_STANDIN_FAIL={f}")));
        command.push(script.display().to_string());
        command
    }

    pub fn mount_root(&self) -> PathBuf {
        self.dir.path().join("cvmfs")
    }

    pub fn config(&self) -> CvmfsConfig {
        CvmfsConfig {
            repository: "images.test".into(),
            server: self.command(None),
            mount_root: self.mount_root(),
            subdir: "ci".into(),
            lease_subdir: false,
            ingest: false,
            gc: true,
            nested_catalogs: true,
            max_batch: 8,
        }
    }

    /// The commands logged, without pids: `transaction images.test => 0`.
    pub fn calls(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.mount_root().join(".standin/calls.log"))
            .unwrap_or_default();
        log.lines()
            .map(|line| match line.split_once(' ') {
                Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest.to_owned(),
                _ => line.to_owned(),
            })
            .collect()
    }

    pub fn images(&self) -> Vec<String> {
        entries(&self.mount_root().join("images.test/ci/.images"))
    }
}
