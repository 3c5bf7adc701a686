//! The single-node Slurm of `deploy/local/slurm`, shared by a test run.
//!
//! The first test that needs Slurm brings it up (or reuses a running one);
//! the script's lock makes that safe from parallel test processes. Commands
//! reach it through `SLURM_CONF`, set on each command, never on the process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};

use crate::paths::local_script;

/// CPUs the test Slurm declares: enough for bursts of light jobs.
const TEST_CPUS: &str = "16";

/// The shared single-node Slurm.
#[derive(Debug)]
pub struct Slurm {
    conf: PathBuf,
}

static SHARED: OnceLock<Result<Slurm, String>> = OnceLock::new();

impl Slurm {
    /// Brings the local Slurm up once per test process (reusing one that is
    /// already running) and returns it.
    pub fn shared() -> anyhow::Result<&'static Slurm> {
        SHARED
            .get_or_init(|| Self::up().map_err(|err| format!("{err:#}")))
            .as_ref()
            .map_err(|err| anyhow::anyhow!("the test Slurm is not available: {err}"))
    }

    fn up() -> anyhow::Result<Slurm> {
        let script = local_script("slurm");
        let output = Command::new(&script)
            .args(["up", "--reuse", "--cpus", TEST_CPUS, "--min-job-age", "60"])
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !output.status.success() {
            bail!(
                "{} up failed ({}):\n{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let env = Command::new(&script).arg("env").output()?;
        let text = String::from_utf8(env.stdout)?;
        let conf = text
            .trim()
            .strip_prefix("export SLURM_CONF=")
            .context("`slurm env` printed no SLURM_CONF")?;
        Ok(Slurm {
            conf: PathBuf::from(conf),
        })
    }

    /// The generated `slurm.conf`.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// `program` (sbatch, squeue, scancel, ...) pointed at this Slurm.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// `program` as a tokio command, pointed at this Slurm.
    pub fn tokio_command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// The job's state as `squeue -h -t all -j ID -o %T` prints it, or
    /// `None` when Slurm no longer knows the job.
    pub fn job_state(&self, job_id: u64) -> anyhow::Result<Option<String>> {
        let output = self
            .command("squeue")
            .args(["-h", "-t", "all", "-j", &job_id.to_string(), "-o", "%T"])
            .output()
            .context("running squeue")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("Invalid job id") {
                return Ok(None);
            }
            bail!("squeue failed ({}): {stderr}", output.status);
        }
        Ok(stdout.lines().next().map(|state| state.trim().to_string()))
    }
}
