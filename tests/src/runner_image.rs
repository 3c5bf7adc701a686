//! The runner image of `deploy/local/runner-image`, built once per test run
//! and unpacked where the launcher starts runners from: a Debian 12 minbase
//! root filesystem with the fake runner laid out at [`RUNNER_HOME`] like the
//! real one, pushed to a `docker-registry` and unpacked by `gha-unpacker
//! --apptainer`, the path a real job's image takes.
//!
//! The first test that asks builds it (the script's lock makes parallel test
//! processes wait for one build); later runs reuse it while the fake-runner
//! binary and the script are unchanged (the script keys the build on their
//! sha256, under `${GHA_LOCAL_STATE:-/tmp/gha-local}/runner-image/`). The
//! binaries are the test run's own (`target/<profile>/fake-runner` and
//! `gha-unpacker`, or `GHA_FAKE_RUNNER` / `GHA_UNPACKER`): `cargo test
//! --workspace` builds them.
//!
//! The image's root filesystem is read-only to the runner, as on CVMFS: a
//! runner started from it needs a writable root at [`RUNNER_HOME`] (see the
//! `runner_image` tests for one way: the work dir bound there, `bin/` bound
//! read-only from the image).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

use crate::paths::local_script;
use crate::registry::Registry;

/// Where the runner is laid out inside the image (`run.sh`, `bin/`).
pub const RUNNER_HOME: &str = "/home/runner";
/// The image's `runner` user, as in actions/runner's official image.
pub const RUNNER_UID: u32 = 1001;
/// The `runner` user's own group.
pub const RUNNER_GID: u32 = 1001;
/// The image's `docker` group, which `runner` is in.
pub const DOCKER_GID: u32 = 123;

/// The unpacked runner image, shared by a test run.
#[derive(Debug)]
pub struct RunnerImage {
    rootfs: PathBuf,
}

static SHARED: OnceLock<Result<RunnerImage, String>> = OnceLock::new();

impl RunnerImage {
    /// Builds the image once per test process (reusing an up-to-date build)
    /// and returns it. Blocks: the first build of a machine takes minutes
    /// (debootstrap), a new fake runner about half a minute.
    pub fn shared() -> anyhow::Result<&'static RunnerImage> {
        SHARED
            .get_or_init(|| Self::build().map_err(|err| format!("{err:#}")))
            .as_ref()
            .map_err(|err| anyhow::anyhow!("the runner image is not available: {err}"))
    }

    fn build() -> anyhow::Result<RunnerImage> {
        let fake_runner = workspace_binary("fake-runner", "GHA_FAKE_RUNNER")?;
        let unpacker = workspace_binary("gha-unpacker", "GHA_UNPACKER")?;
        let script = local_script("runner-image");
        let mut command = Command::new(&script);
        command
            .arg("build")
            .arg("--fake-runner")
            .arg(&fake_runner)
            .arg("--unpacker")
            .arg(&unpacker);
        let up_to_date = Command::new(&script)
            .arg("status")
            .arg("--fake-runner")
            .arg(&fake_runner)
            .status()
            .with_context(|| format!("running {}", script.display()))?
            .success();
        // Only a build needs a registry; this one dies with the fixture.
        let registry = if up_to_date {
            None
        } else {
            let registry = Registry::start()?;
            command.arg("--registry").arg(registry.host());
            Some(registry)
        };
        let output = command
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        drop(registry);
        if !output.status.success() {
            bail!(
                "{} build failed ({}):\n{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let rootfs = String::from_utf8(output.stdout)?
            .lines()
            .last()
            .map(PathBuf::from)
            .context("runner-image printed no path")?;
        if !rootfs
            .join(RUNNER_HOME.trim_start_matches('/'))
            .join("run.sh")
            .is_file()
        {
            bail!("{} has no {RUNNER_HOME}/run.sh", rootfs.display());
        }
        Ok(RunnerImage { rootfs })
    }

    /// The unpacked root filesystem: what a runtime starts the runner from
    /// (`bwrap --ro-bind <rootfs> /`, `apptainer exec <rootfs>`).
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// The runner's root inside [`rootfs`](Self::rootfs), seen from the
    /// host: `<rootfs>/home/runner`.
    pub fn runner_root(&self) -> PathBuf {
        self.rootfs.join(RUNNER_HOME.trim_start_matches('/'))
    }
}

/// A binary of this workspace that the test run built: `$env_var` if set,
/// else `name` in the target directory of the running test executable
/// (`target/<profile>/`, the parent of its `deps/`).
pub fn workspace_binary(name: &str, env_var: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "no {name} binary near {}: build the workspace's binaries \
                 (cargo build --workspace --bins) or set {env_var}",
                exe.display()
            )
        })
}
