//! The emulated world and its rules, free of HTTP: runs and their jobs move
//! through GitHub's statuses, `needs:` hold jobs back, cancellation and
//! re-runs behave as on github.com, and every transition a webhook would
//! announce is recorded as a [`WebhookEvent`].
//!
//! Runners and their sessions are in `runners.rs` (same type, more rules).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::json;
use super::model::{
    Conclusion, Installation, Job, JobSpec, JobStatus, OwnerKind, Repo, Run, Runner, Timestamp,
    WorkflowSpec,
};

/// A refusal in GitHub's terms: the HTTP status and the `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(404, "Not Found")
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, message)
    }
}

/// Timings of the world's rules.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A job queued this long without a runner is cancelled (GitHub: 24 h).
    pub queue_timeout: Duration,
    /// An unused JIT config stops working after this long.
    pub jit_ttl: Duration,
    /// A runner silent this long is offline; its running job fails.
    pub session_timeout: Duration,
    /// Lifetime of installation, registration and remove tokens (GitHub: 1 h).
    pub token_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            queue_timeout: Duration::from_secs(24 * 3600),
            jit_ttl: Duration::from_secs(3600),
            session_timeout: Duration::from_secs(30),
            token_ttl: Duration::from_secs(3600),
        }
    }
}

/// A `workflow_job` webhook to deliver, rendered when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `queued`, `waiting`, `in_progress` or `completed`.
    pub action: &'static str,
    pub job_id: u64,
    pub payload: Value,
}

/// First ids handed out: realistic magnitudes, so 32-bit truncation shows.
const FIRST_REPO_ID: u64 = 700_000_000;
const FIRST_RUN_ID: u64 = 12_000_000_000;
const FIRST_JOB_ID: u64 = 33_000_000_000;
const FIRST_RUNNER_ID: u64 = 1000;

/// Everything the emulator knows.
pub struct World {
    pub(super) base_url: String,
    pub(super) settings: Settings,
    pub(super) repos: BTreeMap<String, Repo>,
    pub(super) runs: BTreeMap<u64, Run>,
    pub(super) jobs: BTreeMap<u64, Job>,
    pub(super) runners: BTreeMap<u64, Runner>,
    /// Runner groups by id; 1 is `Default`, as on GitHub.
    pub(super) runner_groups: BTreeMap<u64, String>,
    /// Registration tokens: token -> (scope, expiry).
    pub(super) registration_tokens: HashMap<String, (super::model::Scope, Timestamp)>,
    /// Session id -> runner id.
    pub(super) sessions: HashMap<String, u64>,
    /// JIT secrets that were used once and are refused from now on.
    pub(super) used_jit_secrets: HashSet<String>,
    /// GitHub App installations by id.
    pub(super) installations: BTreeMap<u64, Installation>,
    events: Vec<WebhookEvent>,
    workflow_ids: HashMap<(String, String), u64>,
    run_numbers: HashMap<String, u64>,
    next_repo_id: u64,
    next_run_id: u64,
    next_job_id: u64,
    pub(super) next_runner_id: u64,
    next_owner_id: u64,
    owner_ids: HashMap<String, u64>,
}

impl World {
    /// An empty world whose URLs start with `base_url`.
    pub fn new(base_url: impl Into<String>, settings: Settings) -> Self {
        Self {
            base_url: base_url.into(),
            settings,
            repos: BTreeMap::new(),
            runs: BTreeMap::new(),
            jobs: BTreeMap::new(),
            runners: BTreeMap::new(),
            runner_groups: BTreeMap::from([(1, "Default".to_string())]),
            registration_tokens: HashMap::new(),
            sessions: HashMap::new(),
            used_jit_secrets: HashSet::new(),
            installations: BTreeMap::new(),
            events: Vec::new(),
            workflow_ids: HashMap::new(),
            run_numbers: HashMap::new(),
            next_repo_id: FIRST_REPO_ID,
            next_run_id: FIRST_RUN_ID,
            next_job_id: FIRST_JOB_ID,
            next_runner_id: FIRST_RUNNER_ID,
            next_owner_id: 9_000_000,
            owner_ids: HashMap::new(),
        }
    }

    /// The URL prefix of everything the emulator serves.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The world's timings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Adds repository `owner/name` (idempotent).
    pub fn add_repo(&mut self, full_name: &str, owner_kind: OwnerKind) -> Result<Repo, ApiError> {
        let (owner, name) = full_name
            .split_once('/')
            .filter(|(owner, name)| !owner.is_empty() && !name.is_empty() && !name.contains('/'))
            .ok_or_else(|| ApiError::invalid(format!("{full_name:?} is not owner/name")))?;
        if let Some(repo) = self.repos.get(full_name) {
            return Ok(repo.clone());
        }
        let owner_id = *self.owner_ids.entry(owner.to_string()).or_insert_with(|| {
            self.next_owner_id += 1;
            self.next_owner_id
        });
        self.next_repo_id += 1;
        let repo = Repo {
            id: self.next_repo_id,
            owner: owner.into(),
            owner_id,
            owner_kind,
            name: name.into(),
            private: true,
        };
        self.repos.insert(full_name.into(), repo.clone());
        Ok(repo)
    }

    pub fn repo(&self, full_name: &str) -> Result<&Repo, ApiError> {
        self.repos.get(full_name).ok_or_else(ApiError::not_found)
    }

    pub fn repo_by_id(&self, id: u64) -> Option<&Repo> {
        self.repos.values().find(|repo| repo.id == id)
    }

    /// Repositories of an owner, by name.
    pub fn repos_of(&self, owner: &str) -> Vec<&Repo> {
        self.repos
            .values()
            .filter(|repo| repo.owner == owner)
            .collect()
    }

    pub fn run(&self, id: u64) -> Result<&Run, ApiError> {
        self.runs.get(&id).ok_or_else(ApiError::not_found)
    }

    pub fn job(&self, id: u64) -> Result<&Job, ApiError> {
        self.jobs
            .get(&id)
            .filter(|job| job.status != JobStatus::Pending)
            .ok_or_else(ApiError::not_found)
    }

    /// The installation covering `repo`, if any.
    pub fn installation_of(&self, repo: &str) -> Option<&Installation> {
        self.installations
            .values()
            .find(|installation| installation.repos.iter().any(|r| r == repo))
    }

    /// Any job, including those whose `needs:` hold them back.
    pub fn job_any(&self, id: u64) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Takes the webhook events recorded since the last call, in order.
    pub fn take_events(&mut self) -> Vec<WebhookEvent> {
        std::mem::take(&mut self.events)
    }

    pub(super) fn emit(&mut self, action: &'static str, job_id: u64) {
        let payload = json::workflow_job_event(self, action, job_id);
        self.events.push(WebhookEvent {
            action,
            job_id,
            payload,
        });
    }

    /// Creates a workflow run of `spec` in `repo`, attempt 1.
    pub fn create_run(
        &mut self,
        repo: &str,
        spec: WorkflowSpec,
        now: Timestamp,
    ) -> Result<u64, ApiError> {
        self.repo(repo)?;
        validate_jobs(&spec.jobs)?;
        let workflow_id = {
            let next = FIRST_RUN_ID / 1000 + self.workflow_ids.len() as u64 + 1;
            *self
                .workflow_ids
                .entry((repo.to_string(), spec.name.clone()))
                .or_insert(next)
        };
        let run_number = {
            let number = self.run_numbers.entry(repo.to_string()).or_insert(0);
            *number += 1;
            *number
        };
        self.next_run_id += 1;
        let id = self.next_run_id;
        let head_sha = spec
            .head_sha
            .clone()
            .unwrap_or_else(|| format!("{:040x}", u128::from(id as u32) * 0x9e37_79b9_7f4a_7c15));
        self.runs.insert(
            id,
            Run {
                id,
                repo: repo.into(),
                workflow_id,
                run_number,
                spec,
                head_sha,
                attempt: 0,
                created_at: now,
                updated_at: now,
                run_started_at: now,
                jobs: Vec::new(),
            },
        );
        self.start_attempt(id, now);
        Ok(id)
    }

    /// Creates the jobs of the run's next attempt.
    fn start_attempt(&mut self, run_id: u64, now: Timestamp) {
        let run = self.runs.get_mut(&run_id).expect("run exists");
        run.attempt += 1;
        run.run_started_at = now;
        run.updated_at = now;
        let attempt = run.attempt;
        let specs = run.spec.jobs.clone();
        let mut created = Vec::new();
        for spec in specs {
            self.next_job_id += 1;
            let id = self.next_job_id;
            let status = if spec.needs.is_empty() {
                spec.hold.unwrap_or(JobStatus::Queued)
            } else {
                JobStatus::Pending
            };
            self.jobs.insert(
                id,
                Job {
                    id,
                    run_id,
                    attempt,
                    spec,
                    status,
                    conclusion: None,
                    created_at: now,
                    started_at: None,
                    completed_at: None,
                    runner: None,
                    cancel_requested: false,
                },
            );
            created.push(id);
        }
        self.runs
            .get_mut(&run_id)
            .expect("run exists")
            .jobs
            .extend(&created);
        for id in created {
            self.announce_visible(id);
        }
    }

    /// The webhook for a job that just became visible.
    fn announce_visible(&mut self, job_id: u64) {
        match self.jobs[&job_id].status {
            JobStatus::Queued => self.emit("queued", job_id),
            JobStatus::Waiting => self.emit("waiting", job_id),
            _ => {}
        }
    }

    /// Jobs of the run's latest attempt (or every attempt), visible ones only.
    pub fn run_jobs(&self, run_id: u64, all_attempts: bool) -> Result<Vec<&Job>, ApiError> {
        let run = self.run(run_id)?;
        Ok(run
            .jobs
            .iter()
            .map(|id| &self.jobs[id])
            .filter(|job| job.status != JobStatus::Pending)
            .filter(|job| all_attempts || job.attempt == run.attempt)
            .collect())
    }

    /// The run's status and conclusion, derived from its latest attempt.
    pub fn run_status(&self, run_id: u64) -> (JobStatus, Option<Conclusion>) {
        let run = &self.runs[&run_id];
        let jobs: Vec<&Job> = run
            .jobs
            .iter()
            .map(|id| &self.jobs[id])
            .filter(|job| job.attempt == run.attempt)
            .collect();
        let all_done = jobs.iter().all(|job| job.status == JobStatus::Completed);
        if all_done {
            let has = |c| jobs.iter().any(|job| job.conclusion == Some(c));
            let conclusion = if has(Conclusion::Failure) {
                Conclusion::Failure
            } else if has(Conclusion::Cancelled) {
                Conclusion::Cancelled
            } else {
                Conclusion::Success
            };
            return (JobStatus::Completed, Some(conclusion));
        }
        let started = jobs
            .iter()
            .any(|job| matches!(job.status, JobStatus::InProgress | JobStatus::Completed));
        if started {
            (JobStatus::InProgress, None)
        } else if jobs.iter().all(|job| job.status == JobStatus::Waiting) {
            (JobStatus::Waiting, None)
        } else {
            (JobStatus::Queued, None)
        }
    }

    /// Runs of `repo`, newest first, optionally those whose status or
    /// conclusion is `status`.
    pub fn repo_runs(&self, repo: &str, status: Option<&str>) -> Result<Vec<&Run>, ApiError> {
        self.repo(repo)?;
        Ok(self
            .runs
            .values()
            .rev()
            .filter(|run| run.repo == repo)
            .filter(|run| match status {
                None => true,
                Some(wanted) => {
                    let (status, conclusion) = self.run_status(run.id);
                    status.as_str() == wanted || conclusion.map(Conclusion::as_str) == Some(wanted)
                }
            })
            .collect())
    }

    /// Moves a `waiting` or `requested` job to `queued`.
    pub fn release_job(&mut self, job_id: u64, now: Timestamp) -> Result<(), ApiError> {
        let job = self.jobs.get_mut(&job_id).ok_or_else(ApiError::not_found)?;
        if !matches!(job.status, JobStatus::Waiting | JobStatus::Requested) {
            return Err(ApiError::new(
                409,
                format!("job is {}", job.status.as_str()),
            ));
        }
        job.status = JobStatus::Queued;
        job.created_at = now;
        self.touch_run(job_id, now);
        self.emit("queued", job_id);
        Ok(())
    }

    pub(super) fn touch_run(&mut self, job_id: u64, now: Timestamp) {
        let run_id = self.jobs[&job_id].run_id;
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.updated_at = now;
        }
    }

    /// Ends a job with `conclusion`, announces it, and releases or skips
    /// the jobs that need it.
    pub(super) fn finish_job(&mut self, job_id: u64, conclusion: Conclusion, now: Timestamp) {
        let job = self.jobs.get_mut(&job_id).expect("job exists");
        let was_visible = job.status != JobStatus::Pending;
        job.status = JobStatus::Completed;
        job.conclusion = Some(conclusion);
        job.completed_at = Some(now);
        job.cancel_requested = false;
        let (run_id, attempt) = (job.run_id, job.attempt);
        self.touch_run(job_id, now);
        if was_visible || conclusion != Conclusion::Skipped {
            self.emit("completed", job_id);
        }
        self.advance_dependents(run_id, attempt, now);
    }

    /// Jobs whose `needs:` are all finished: queued if all succeeded,
    /// skipped otherwise (and so on down the chain).
    fn advance_dependents(&mut self, run_id: u64, attempt: u32, now: Timestamp) {
        loop {
            let attempt_jobs: Vec<u64> = self.runs[&run_id]
                .jobs
                .iter()
                .copied()
                .filter(|id| self.jobs[id].attempt == attempt)
                .collect();
            let conclusion_of = |name: &str| {
                attempt_jobs
                    .iter()
                    .map(|id| &self.jobs[id])
                    .find(|job| job.spec.name == name)
                    .and_then(|job| job.conclusion)
            };
            let ready = attempt_jobs.iter().copied().find_map(|id| {
                let job = &self.jobs[&id];
                if job.status != JobStatus::Pending {
                    return None;
                }
                let needs: Vec<Option<Conclusion>> = job
                    .spec
                    .needs
                    .iter()
                    .map(|name| conclusion_of(name))
                    .collect();
                if needs.iter().any(Option::is_none) {
                    return None;
                }
                let all_succeeded = needs.iter().all(|c| *c == Some(Conclusion::Success));
                Some((id, all_succeeded))
            });
            let Some((id, all_succeeded)) = ready else {
                return;
            };
            if all_succeeded {
                let job = self.jobs.get_mut(&id).expect("job exists");
                job.status = job.spec.hold.unwrap_or(JobStatus::Queued);
                job.created_at = now;
                self.announce_visible(id);
            } else {
                self.finish_job(id, Conclusion::Skipped, now);
            }
        }
    }

    /// Cancels the run: jobs not started are cancelled now; running jobs are
    /// told to stop and end when their runner reports.
    pub fn cancel_run(&mut self, run_id: u64, now: Timestamp) -> Result<(), ApiError> {
        let run = self.run(run_id)?;
        if self.run_status(run_id).0 == JobStatus::Completed {
            return Err(ApiError::new(
                409,
                "Cannot cancel a workflow run that is completed.",
            ));
        }
        let attempt = run.attempt;
        let jobs: Vec<u64> = run.jobs.clone();
        for id in jobs {
            let job = &self.jobs[&id];
            if job.attempt != attempt {
                continue;
            }
            match job.status {
                JobStatus::InProgress => {
                    self.jobs.get_mut(&id).expect("job exists").cancel_requested = true;
                }
                JobStatus::Completed => {}
                _ => self.finish_job(id, Conclusion::Cancelled, now),
            }
        }
        Ok(())
    }

    /// Re-runs a completed run as a new attempt with new job ids.
    pub fn rerun(&mut self, run_id: u64, now: Timestamp) -> Result<u32, ApiError> {
        self.run(run_id)?;
        if self.run_status(run_id).0 != JobStatus::Completed {
            return Err(ApiError::new(403, "This workflow is already running"));
        }
        self.start_attempt(run_id, now);
        Ok(self.runs[&run_id].attempt)
    }

    /// Applies the timeouts that are due at `now`.
    pub fn tick(&mut self, now: Timestamp) {
        let queue_timeout = chrono::Duration::from_std(self.settings.queue_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let expired: Vec<u64> = self
            .jobs
            .values()
            .filter(|job| {
                matches!(
                    job.status,
                    JobStatus::Queued | JobStatus::Waiting | JobStatus::Requested
                ) && job.created_at + queue_timeout <= now
            })
            .map(|job| job.id)
            .collect();
        for id in expired {
            self.finish_job(id, Conclusion::Cancelled, now);
        }
        self.expire_sessions(now);
    }
}

fn validate_jobs(jobs: &[JobSpec]) -> Result<(), ApiError> {
    if jobs.is_empty() {
        return Err(ApiError::invalid("a workflow needs at least one job"));
    }
    let names: HashSet<&str> = jobs.iter().map(|job| job.name.as_str()).collect();
    if names.len() != jobs.len() {
        return Err(ApiError::invalid("job names must be unique"));
    }
    for job in jobs {
        if job.labels.is_empty() {
            return Err(ApiError::invalid(format!(
                "job {} has no runs-on labels",
                job.name
            )));
        }
        if let Some(hold) = job.hold
            && !matches!(
                hold,
                JobStatus::Waiting | JobStatus::Requested | JobStatus::Queued
            )
        {
            return Err(ApiError::invalid(format!(
                "job {} can be held in waiting or requested, not {}",
                job.name,
                hold.as_str()
            )));
        }
        for need in &job.needs {
            if !names.contains(need.as_str()) {
                return Err(ApiError::invalid(format!(
                    "job {} needs unknown job {need}",
                    job.name
                )));
            }
        }
    }
    // A cycle would hold its jobs back forever.
    let mut done: HashSet<&str> = HashSet::new();
    while done.len() < jobs.len() {
        let before = done.len();
        for job in jobs {
            if job.needs.iter().all(|need| done.contains(need.as_str())) {
                done.insert(&job.name);
            }
        }
        if done.len() == before {
            return Err(ApiError::invalid("the jobs' needs form a cycle"));
        }
    }
    Ok(())
}
