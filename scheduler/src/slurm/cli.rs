//! [`BatchSystem`] over Slurm's command line: `sbatch`, `squeue`, `scancel`.
//!
//! Every command runs with a cleared environment (only `PATH` and the
//! configured variables such as `SLURM_CONF`), so neither the scheduler's
//! secrets nor a stray `SQUEUE_FORMAT` reach it; with a timeout; and is
//! killed if the future is dropped. Job variables go into `sbatch`'s own
//! environment and are named in `--export`, never put on argv.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::{debug, warn};

use super::{BatchError, BatchSystem, CancelOutcome, SlurmJob, SlurmJobId, SlurmState, Submission};
use super::{sbatch, squeue};

/// Where the Slurm commands are and how to run them.
#[derive(Debug, Clone)]
pub struct SlurmCliConfig {
    pub sbatch: PathBuf,
    pub squeue: PathBuf,
    pub scancel: PathBuf,
    /// Variables every command gets (e.g. `SLURM_CONF`), on top of `PATH`.
    pub env: Vec<(String, String)>,
    /// `PATH` for the commands: the scheduler's own by default. Not
    /// exported to the job, which gets the user's login environment instead
    /// (a name list in `--export` implies `--get-user-env`).
    pub path: String,
    /// How long one command may take before it is killed and the outcome
    /// counted as unknown.
    pub timeout: Duration,
    /// `squeue -u USER`; `None`: every user's jobs (then filtered by name).
    pub user: Option<String>,
    /// How many times `cancel` checks (and re-sends `scancel`) before
    /// giving up on a job that stays pending or running.
    pub cancel_checks: u32,
    /// Pause between those checks.
    pub cancel_poll: Duration,
}

impl Default for SlurmCliConfig {
    fn default() -> Self {
        SlurmCliConfig {
            sbatch: "sbatch".into(),
            squeue: "squeue".into(),
            scancel: "scancel".into(),
            env: Vec::new(),
            path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            timeout: Duration::from_secs(30),
            user: None,
            cancel_checks: 20,
            cancel_poll: Duration::from_millis(250),
        }
    }
}

/// The CLI adapter.
#[derive(Debug, Clone)]
pub struct SlurmCli {
    config: SlurmCliConfig,
}

impl SlurmCli {
    pub fn new(config: SlurmCliConfig) -> Self {
        SlurmCli { config }
    }

    /// Runs `program args` (with `stdin` and extra variables `env`) to
    /// completion within the timeout.
    async fn run(
        &self,
        program: &PathBuf,
        args: &[String],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Output, BatchError> {
        let command_name = program.display().to_string();
        let transient = |detail: String| BatchError::Transient {
            command: command_name.clone(),
            detail,
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", &self.config.path)
            .envs(self.config.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let work = async {
            let mut child = command
                .spawn()
                .map_err(|err| transient(format!("cannot start: {err}")))?;
            if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(text.as_bytes())
                    .await
                    .map_err(|err| transient(format!("writing stdin: {err}")))?;
                drop(pipe);
            }
            child
                .wait_with_output()
                .await
                .map_err(|err| transient(format!("waiting: {err}")))
        };
        match tokio::time::timeout(self.config.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(transient(format!(
                "timed out after {:?}",
                self.config.timeout
            ))),
        }
    }

    /// `squeue -h -t all -o FORMAT` with `filter` arguments, parsed.
    async fn squeue(&self, filter: &[String]) -> Result<Vec<SlurmJob>, BatchError> {
        let mut args: Vec<String> = vec!["-h".into(), "-t".into(), "all".into()];
        if let Some(user) = &self.config.user {
            args.push(format!("--user={user}"));
        }
        args.extend(filter.iter().cloned());
        args.push(format!("--format={}", squeue::FORMAT));
        let output = self.run(&self.config.squeue, &args, None, &[]).await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(BatchError::Transient {
                command: "squeue".into(),
                detail: format!("{}: {}", output.status, stderr.trim()),
            });
        }
        let (jobs, skipped) = squeue::parse(&String::from_utf8_lossy(&output.stdout));
        if !skipped.is_empty() {
            debug!(lines = ?skipped, "squeue lines not read");
        }
        Ok(jobs)
    }

    /// The job's state, `None` once Slurm no longer knows it.
    async fn state_of(&self, id: SlurmJobId) -> Result<Option<SlurmState>, BatchError> {
        let filter = [format!("--jobs={id}")];
        match self.squeue(&filter).await {
            Ok(jobs) => Ok(jobs
                .into_iter()
                .find(|job| job.id == id)
                .map(|job| job.state)),
            // 22.05 refuses ids it does not know; newer releases print nothing.
            Err(BatchError::Transient { detail, .. }) if detail.contains("Invalid job id") => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    async fn scancel(&self, id: SlurmJobId) {
        match self
            .run(&self.config.scancel, &[id.to_string()], None, &[])
            .await
        {
            Ok(output) if output.status.success() => {}
            // Already completing, or unknown: the check after it decides.
            Ok(output) => debug!(
                slurm_job_id = id,
                stderr = %String::from_utf8_lossy(&output.stderr).trim(),
                "scancel failed"
            ),
            Err(err) => warn!(slurm_job_id = id, error = %err, "scancel failed"),
        }
    }
}

impl BatchSystem for SlurmCli {
    async fn submit(&self, submission: &Submission) -> Result<SlurmJobId, BatchError> {
        sbatch::check(submission)?;
        let args = sbatch::args(submission);
        let env: Vec<(&str, &str)> = submission
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(
                submission
                    .secret_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.expose_secret())),
            )
            .collect();
        let output = self
            .run(&self.config.sbatch, &args, Some(&submission.script), &env)
            .await?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        if !output.status.success() {
            warn!(job_name = %submission.name, status = %output.status, stderr, "sbatch failed");
            if sbatch::is_final_refusal(stderr) {
                return Err(BatchError::Rejected(stderr.to_string()));
            }
            return Err(BatchError::Transient {
                command: "sbatch".into(),
                detail: format!("{}: {stderr}", output.status),
            });
        }
        if !stderr.is_empty() {
            warn!(job_name = %submission.name, stderr, "sbatch said");
        }
        sbatch::parse_job_id(&stdout).ok_or_else(|| BatchError::Transient {
            command: "sbatch".into(),
            detail: format!("unreadable job id in stdout {:?}", stdout.trim()),
        })
    }

    async fn list(&self, name_prefix: &str) -> Result<Vec<SlurmJob>, BatchError> {
        let mut jobs = self.squeue(&[]).await?;
        jobs.retain(|job| job.name.starts_with(name_prefix));
        Ok(jobs)
    }

    async fn find_by_name(&self, name: &str) -> Result<Vec<SlurmJob>, BatchError> {
        let mut jobs = self.squeue(&[format!("--name={name}")]).await?;
        jobs.retain(|job| job.name == name);
        Ok(jobs)
    }

    async fn cancel(&self, id: SlurmJobId) -> Result<CancelOutcome, BatchError> {
        let Some(state) = self.state_of(id).await? else {
            return Ok(CancelOutcome::Unknown);
        };
        if state.is_finished() {
            return Ok(CancelOutcome::Cancelled);
        }
        let mut state = state;
        for check in 0..self.config.cancel_checks.max(1) {
            // COMPLETING is on its way out: wait for it without re-sending.
            if state != SlurmState::Completing {
                self.scancel(id).await;
            }
            if check > 0 || state == SlurmState::Completing {
                tokio::time::sleep(self.config.cancel_poll).await;
            }
            match self.state_of(id).await? {
                // We saw it before: it ended and its record expired.
                None => return Ok(CancelOutcome::Cancelled),
                Some(now) if now.is_finished() => return Ok(CancelOutcome::Cancelled),
                Some(now) => state = now,
            }
        }
        Err(BatchError::Transient {
            command: "scancel".into(),
            detail: format!(
                "job {id} still {state:?} after {} checks",
                self.config.cancel_checks
            ),
        })
    }
}
