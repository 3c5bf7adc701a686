//! Where the repository's scripts and the local stack's state live.

use std::path::{Path, PathBuf};

/// The repository root (the workspace), from this crate's manifest dir.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A script of the local stack, e.g. `deploy/local/slurm`.
pub fn local_script(name: &str) -> PathBuf {
    repo_root().join("deploy/local").join(name)
}

/// Where test artefacts worth keeping (logs of failed tests) go:
/// `target/test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    repo_root().join("target/test-artifacts")
}
