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
        Self::up_with(&["--reuse", "--min-job-age", "60"])
    }

    /// Brings up a Slurm of its own in `state` (`deploy/local/slurm up
    /// --state`): for tests that take its node down or stop its daemons,
    /// which must not disturb the shared one.
    pub fn dedicated(state: &Path, min_job_age_secs: u32) -> anyhow::Result<DedicatedSlurm> {
        let state_arg = state.display().to_string();
        let age = min_job_age_secs.to_string();
        let slurm = Self::up_with(&["--state", &state_arg, "--min-job-age", &age])?;
        Ok(DedicatedSlurm {
            slurm,
            state: state.to_path_buf(),
        })
    }

    fn up_with(extra: &[&str]) -> anyhow::Result<Slurm> {
        let script = local_script("slurm");
        let state: Vec<&str> = extra
            .iter()
            .position(|arg| *arg == "--state")
            .map(|at| extra[at..at + 2].to_vec())
            .unwrap_or_default();
        let output = Command::new(&script)
            .args(["up", "--cpus", TEST_CPUS])
            .args(extra)
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
        let env = Command::new(&script).arg("env").args(&state).output()?;
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

/// The node name every local Slurm gives its one node.
pub const NODE: &str = "gha-node1";

/// A Slurm owned by one test: brought down, its state removed, on drop.
#[derive(Debug)]
pub struct DedicatedSlurm {
    slurm: Slurm,
    state: PathBuf,
}

impl std::ops::Deref for DedicatedSlurm {
    type Target = Slurm;

    fn deref(&self) -> &Slurm {
        &self.slurm
    }
}

impl DedicatedSlurm {
    fn pid(&self, daemon: &str) -> Option<i32> {
        std::fs::read_to_string(self.state.join(format!("run/{daemon}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILLs `slurmctld` or `slurmd`: the daemon is gone, its jobs are
    /// not (slurmstepd keeps them).
    pub fn kill_daemon(&self, daemon: &str) -> anyhow::Result<()> {
        let pid = self
            .pid(daemon)
            .with_context(|| format!("no pid file for {daemon}"))?;
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {daemon} ({pid}) failed");
        Ok(())
    }

    /// Starts `slurmctld` or `slurmd` again with this Slurm's config.
    pub fn start_daemon(&self, daemon: &str) -> anyhow::Result<()> {
        let mut command = Command::new(daemon);
        command.arg("-f").arg(self.conf());
        if daemon == "slurmd" {
            command.args(["-N", NODE]);
        }
        let status = command
            .status()
            .with_context(|| format!("starting {daemon}"))?;
        anyhow::ensure!(status.success(), "{daemon} did not start: {status}");
        Ok(())
    }

    /// `scontrol update nodename=<node> state=<state> [reason=...]`.
    pub fn set_node_state(&self, state: &str, reason: &str) -> anyhow::Result<()> {
        let mut command = self.command("scontrol");
        command.args([
            "update",
            &format!("nodename={NODE}"),
            &format!("state={state}"),
        ]);
        if !reason.is_empty() {
            command.arg(format!("reason={reason}"));
        }
        let output = command.output().context("scontrol")?;
        anyhow::ensure!(
            output.status.success(),
            "scontrol update state={state}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    /// The node's state as `sinfo -h -o %t` prints it (`idle`, `down*`, ...).
    pub fn node_state(&self) -> anyhow::Result<String> {
        let output = self
            .command("sinfo")
            .args(["-h", "-n", NODE, "-o", "%t"])
            .output()
            .context("sinfo")?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl Drop for DedicatedSlurm {
    fn drop(&mut self) {
        let _ = self
            .command("scancel")
            .args(["--full", "--user", "root"])
            .status();
        let _ = Command::new(local_script("slurm"))
            .args(["down", "--purge", "--state"])
            .arg(&self.state)
            .output();
    }
}
