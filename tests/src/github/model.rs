//! The emulated world's nouns: repositories, workflow runs, jobs, runners,
//! and the specs tests create them from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Wall-clock time, as GitHub reports it.
pub type Timestamp = DateTime<Utc>;

/// What a fake runner does for one step of a job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Sleep this long, then succeed.
    Sleep { ms: u64 },
    /// Run a shell command (`sh -c`); a non-zero exit fails the job.
    Run { command: String },
    /// Fail the job.
    Fail,
    /// Block until the job is cancelled or the runner is signalled.
    Hang,
}

/// A job's status as GitHub reports it. `Pending` is the emulator's own: a
/// job whose `needs:` are not finished does not exist in GitHub's API yet.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Requested,
    Waiting,
    Queued,
    InProgress,
    Completed,
}

impl JobStatus {
    /// GitHub's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Requested => "requested",
            Self::Waiting => "waiting",
            Self::Queued => "queued",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
        }
    }
}

/// How a completed job or run ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    Success,
    Failure,
    Cancelled,
    Skipped,
}

impl Conclusion {
    /// GitHub's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }
}

/// One job of a workflow, as a test describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobSpec {
    /// The job's display name (`name:`, or the key with the matrix values,
    /// `test (1)`): what the runner prints in `Running job: <name>`.
    pub name: String,
    /// The job's key under `jobs:` in the workflow file, what `GITHUB_JOB`
    /// holds; `None` = the same as `name`. Matrix legs share one key.
    #[serde(default)]
    pub key: Option<String>,
    /// `runs-on` labels.
    pub labels: Vec<String>,
    /// Names of jobs of the same workflow that must succeed first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// What the runner does; empty = succeed at once.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// `queued` (default), `waiting` (an environment awaiting approval) or
    /// `requested`; the latter two wait for [`super::GitHubEmulator::release_job`].
    #[serde(default)]
    pub hold: Option<JobStatus>,
}

impl JobSpec {
    /// A job with these labels that succeeds at once.
    pub fn new(name: &str, labels: &[&str]) -> Self {
        Self {
            name: name.into(),
            key: None,
            labels: labels.iter().map(|label| label.to_string()).collect(),
            needs: Vec::new(),
            steps: Vec::new(),
            hold: None,
        }
    }

    /// Sets the job's key under `jobs:` (`GITHUB_JOB`), when it differs
    /// from its display name.
    pub fn key(mut self, key: &str) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The job's key under `jobs:`: what `GITHUB_JOB` holds.
    pub fn job_key(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.name)
    }

    /// Adds `needs:` dependencies (by the jobs' names).
    pub fn needs(mut self, jobs: &[&str]) -> Self {
        self.needs = jobs.iter().map(|job| job.to_string()).collect();
        self
    }

    /// Sets the steps the runner performs.
    pub fn steps(mut self, steps: Vec<Step>) -> Self {
        self.steps = steps;
        self
    }

    /// Holds the job in `waiting` or `requested` until released.
    pub fn hold(mut self, status: JobStatus) -> Self {
        self.hold = Some(status);
        self
    }
}

/// A workflow run, as a test describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkflowSpec {
    /// The workflow's `name:`.
    pub name: String,
    /// `None` is sent as `null`, as GitHub does for some events.
    #[serde(default = "default_branch")]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub head_sha: Option<String>,
    /// The triggering event: `push`, `pull_request`, ...
    #[serde(default = "default_event")]
    pub event: String,
    /// A pull request from a fork: the run's `head_repository` is the fork.
    #[serde(default)]
    pub from_fork: bool,
    /// The fork was deleted: GitHub sends `head_repository: null`.
    #[serde(default)]
    pub fork_deleted: bool,
    pub jobs: Vec<JobSpec>,
}

fn default_branch() -> Option<String> {
    Some("main".into())
}

fn default_event() -> String {
    "push".into()
}

impl WorkflowSpec {
    /// A workflow of `jobs` on branch `main`, triggered by a push.
    pub fn new(name: &str, jobs: Vec<JobSpec>) -> Self {
        Self {
            name: name.into(),
            head_branch: default_branch(),
            head_sha: None,
            event: default_event(),
            from_fork: false,
            fork_deleted: false,
            jobs,
        }
    }

    /// `count` independent jobs (`<name>-1` ...), as a matrix expands: the
    /// 70-job burst of the reference site. As matrix legs do, they share
    /// one key, `name` (`GITHUB_JOB`).
    pub fn fan_out(name: &str, count: usize, labels: &[&str], steps: Vec<Step>) -> Self {
        let jobs = (1..=count)
            .map(|i| {
                JobSpec::new(&format!("{name}-{i}"), labels)
                    .key(name)
                    .steps(steps.clone())
            })
            .collect();
        Self::new(name, jobs)
    }
}

/// Who owns a repository.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum OwnerKind {
    Organization,
    User,
}

/// A repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    pub id: u64,
    pub owner: String,
    pub owner_id: u64,
    pub owner_kind: OwnerKind,
    pub name: String,
    pub private: bool,
}

impl Repo {
    /// `owner/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// Where a runner is registered: one repository, or an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    Repo(String),
    Org(String),
}

/// A workflow run.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub repo: String,
    pub workflow_id: u64,
    pub run_number: u64,
    pub spec: WorkflowSpec,
    pub head_sha: String,
    pub attempt: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub run_started_at: Timestamp,
    /// Job ids of every attempt, oldest attempt first.
    pub jobs: Vec<u64>,
}

/// A job of one attempt of a run.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub run_id: u64,
    pub attempt: u32,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub conclusion: Option<Conclusion>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
    /// The runner that took it.
    pub runner: Option<(u64, String)>,
    /// The run was cancelled while this job ran: the runner is told.
    pub cancel_requested: bool,
}

/// A self-hosted runner.
#[derive(Debug, Clone)]
pub struct Runner {
    pub id: u64,
    pub name: String,
    pub scope: Scope,
    pub labels: Vec<String>,
    pub group_id: u64,
    pub ephemeral: bool,
    pub created_at: Timestamp,
    /// The single-use JIT secret and when it expires, until it is used.
    pub jit: Option<(String, Timestamp)>,
    /// The connected session and its last heartbeat.
    pub session: Option<(String, Timestamp)>,
    /// The job it is running.
    pub job: Option<u64>,
    /// Jobs it has finished.
    pub jobs_done: u32,
}

/// A GitHub App installation: an account and the repositories it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    pub id: u64,
    pub app_id: u64,
    /// The organisation or user it is installed on.
    pub account: String,
    /// `owner/name` of each repository it can access.
    pub repos: Vec<String>,
}
