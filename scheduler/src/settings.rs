//! The scheduler's run-time settings, validated from the command line.

use std::time::Duration;

/// Where runner registrations go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScopeKind {
    /// Each job's own repository.
    Repo,
    /// The repository owner's organisation (runner groups apply).
    Org,
}

/// How the scheduler submits, names and reconciles.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of our Slurm job names (`<prefix>-<job id>-<attempt>`): how our
    /// jobs are found in `squeue` and adopted after a restart. One per
    /// scheduler deployment sharing a Slurm cluster.
    pub name_prefix: String,
    /// Cluster name in runner names (`<cluster>-<slurm job id>`).
    pub cluster: String,
    /// Submission attempts per job before it is FAILED.
    pub max_attempts: u32,
    /// `--signal=B:TERM@<grace>`: seconds the launcher has to stop the runner.
    pub signal_grace_seconds: u32,
    /// The batch script's one command (the launcher).
    pub launcher_command: String,
    /// Where the job's output goes (`--output`, `%j`/`%x` allowed).
    pub job_output: String,
    /// Plain variables for every job (e.g. `GHA_NATS_URL`).
    pub job_env: Vec<(String, String)>,
    pub runner_scope: ScopeKind,
    pub runner_group_id: i64,
    /// `sbatch` calls in flight at once.
    pub submit_concurrency: usize,
    pub reconcile_interval: Duration,
    /// Every how many reconcile passes the runners of every repository
    /// (or org) seen are listed and our offline, idle ones deleted.
    pub runner_sweep_every: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            name_prefix: "gha".into(),
            cluster: "slurm".into(),
            max_attempts: 3,
            signal_grace_seconds: 60,
            launcher_command: "gha-runner-launcher run".into(),
            job_output: "/dev/null".into(),
            job_env: Vec::new(),
            runner_scope: ScopeKind::Repo,
            runner_group_id: 1,
            submit_concurrency: 16,
            reconcile_interval: Duration::from_secs(15),
            runner_sweep_every: 20,
        }
    }
}
