//! The batch system behind a small trait: submit, list our jobs, cancel.
//!
//! [`BatchSystem`] is the scheduler's only way to touch Slurm; the CLI
//! adapter (`sbatch`/`squeue`/`scancel`) implements it. Decisions never call
//! Slurm directly, so they are tested without it.

pub mod cli;
pub mod sbatch;
pub mod squeue;

use std::future::Future;

use secrecy::SecretString;

/// A Slurm job id.
pub type SlurmJobId = u64;

/// What to submit: one batch job that starts one launcher.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Deterministic `--job-name` (from GitHub job id and attempt): how a
    /// submission that succeeded behind an error is found again.
    pub name: String,
    /// `--comment`: the correlation id tying Slurm, logs and GitHub together.
    pub comment: String,
    /// Placement arguments from the policy (`--partition=...`, `--cpus-per-task=...`,
    /// ...), already validated.
    pub placement_args: Vec<String>,
    /// Seconds between SIGTERM to the batch shell and the kill
    /// (`--signal=B:TERM@<grace>`).
    pub signal_grace_seconds: u32,
    /// Plain variables for the job (`NAME=value`), passed in sbatch's
    /// environment and named in `--export`: never on argv.
    pub env: Vec<(String, String)>,
    /// Secret variables for the job (the claim credential), passed the same
    /// way: in sbatch's environment, named in `--export`, never on argv.
    pub secret_env: Vec<(String, SecretString)>,
    /// The batch script, fed to `sbatch` on stdin.
    pub script: String,
    /// `--output` (Slurm's `%j`/`%x` patterns allowed); empty: Slurm's
    /// default, `slurm-%j.out` in the submitter's working directory.
    pub output: String,
}

/// Slurm's job states, as `squeue %T` prints them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlurmState {
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Completed,
    Cancelled,
    Failed,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    /// Anything else Slurm prints (future states), kept verbatim.
    Other(String),
}

impl SlurmState {
    /// Waiting to start (or starting): withdrawing it costs nothing.
    pub fn is_pending(&self) -> bool {
        matches!(self, Self::Pending | Self::Configuring)
    }

    /// Ended, one way or another: the job holds no resources.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Cancelled
                | Self::Failed
                | Self::Timeout
                | Self::NodeFail
                | Self::Preempted
                | Self::BootFail
                | Self::Deadline
                | Self::OutOfMemory
        )
    }
}

/// One of our Slurm jobs as `squeue` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    pub id: SlurmJobId,
    pub name: String,
    pub comment: String,
    pub state: SlurmState,
    /// Slurm's reason (`Resources`, `Priority`, `NodeDown`, ...); may be empty.
    pub reason: String,
    /// Node list once running; empty while pending.
    pub nodes: String,
}

/// What `cancel` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job is now cancelled (or finished): verified with `squeue`.
    Cancelled,
    /// Slurm no longer knows the id (finished longer than `MinJobAge` ago,
    /// or never existed): nothing to cancel.
    Unknown,
}

/// Why the batch system failed. Callers branch on it: a rejection will not
/// succeed on retry; anything else might, after a lookup by name.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Slurm refused the request (bad partition, account, limits): final.
    #[error("rejected by Slurm: {0}")]
    Rejected(String),
    /// The command failed, timed out or printed something unparsable: the
    /// outcome is unknown.
    #[error("{command}: {detail}")]
    Transient { command: String, detail: String },
}

impl BatchError {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "rejected",
            Self::Transient { .. } => "transient",
        }
    }
}

/// The scheduler's view of Slurm.
pub trait BatchSystem: Send + Sync + 'static {
    /// Submits one job; returns its id. After a `Transient` error the job
    /// may exist: look it up by name before submitting again.
    fn submit(
        &self,
        submission: &Submission,
    ) -> impl Future<Output = Result<SlurmJobId, BatchError>> + Send;

    /// Every job Slurm still knows whose name starts with `name_prefix`, in
    /// any state, in one query.
    fn list(
        &self,
        name_prefix: &str,
    ) -> impl Future<Output = Result<Vec<SlurmJob>, BatchError>> + Send;

    /// Jobs with exactly this name (normally zero or one).
    fn find_by_name(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Vec<SlurmJob>, BatchError>> + Send;

    /// Cancels a job and verifies it is gone or ended.
    fn cancel(
        &self,
        id: SlurmJobId,
    ) -> impl Future<Output = Result<CancelOutcome, BatchError>> + Send;
}
