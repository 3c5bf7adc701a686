//! The scheduler's core: job records in the `gha_jobs` bucket, changed
//! only by compare-and-set, and the flows that change them (demand in,
//! status changes, submission). Submission, JIT minting and reconciliation
//! live in their own modules and go through [`Engine::modify`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use gha_proto::v1::{
    JobPhase, JobState, JobStatus, JobStatusChange, QueuedJob, RunnerEvent, RunnerEventKind,
};
use gha_proto::{ContractError, TypedKv};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::admission::{Admission, Candidate};
use crate::github::{GitHubApi, RunnerScope};
use crate::metrics::Metrics;
use crate::placement::{Decision, Refusal};
use crate::record;
use crate::settings::Settings;
use crate::slurm::BatchSystem;

/// Placement as the engine needs it (the policy implements it).
pub trait Placer: Send + Sync + 'static {
    fn place(&self, job: &QueuedJob) -> Result<Decision, Refusal>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Why a flow could not finish; the message is retried or logged.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("job {job_id}: the record kept changing under us")]
    Contended { job_id: i64 },
    /// Slurm could not say whether a job exists: nothing is submitted.
    #[error("looking a Slurm job up: {0}")]
    Lookup(crate::slurm::BatchError),
}

impl EngineError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Contract(err) => err.metric_label(),
            Self::Contended { .. } => "contended",
            Self::Lookup(err) => err.metric_label(),
        }
    }
}

/// What a `modify` closure decides.
// Short-lived and moved once: boxing the record would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// Write this record.
    Write(JobState),
    /// Leave the record as it is.
    Keep,
}

/// The scheduler's state and its collaborators.
pub struct Engine<B, G, P> {
    pub(crate) kv: TypedKv<JobState>,
    pub(crate) batch: B,
    pub(crate) github: G,
    pub(crate) placer: P,
    pub(crate) settings: Settings,
    pub(crate) metrics: Metrics,
    /// Who may start now, under the caps, fairly across repositories.
    pub(crate) admission: Mutex<Admission>,
    /// Latest known record of every job that is not terminal: what
    /// reconciliation walks without reading the whole bucket each tick.
    pub(crate) live: Mutex<HashMap<i64, JobState>>,
    /// Jobs whose submission runs right now in this process.
    pub(crate) submitting: Mutex<HashSet<i64>>,
    /// Jobs whose runner registration is being minted right now.
    pub(crate) minting: Mutex<HashSet<i64>>,
    /// Woken when admission may have room or new work.
    pub(crate) wake: Notify,
    /// Every repository or org a runner of ours may be registered in: what
    /// the offline-runner sweep lists.
    pub(crate) scopes: Mutex<HashSet<RunnerScope>>,
    /// Reconcile passes so far (the sweep runs every few).
    pub(crate) passes: std::sync::atomic::AtomicU64,
}

pub(crate) fn candidate(state: &JobState) -> Candidate {
    let job = state.job.clone().unwrap_or_default();
    Candidate {
        job_id: job.job_id,
        repository: job.repository,
        owner: job.owner,
        pool: state
            .placement
            .as_ref()
            .map(|placement| placement.pool.clone())
            .unwrap_or_default(),
        queued_at_unix_ms: if job.created_at_unix_ms > 0 {
            job.created_at_unix_ms
        } else {
            job.observed_at_unix_ms
        },
    }
}

/// The labels a runner serves, normalised: records with the same key are
/// interchangeable demand.
pub(crate) fn label_key(state: &JobState) -> Vec<String> {
    let mut labels: Vec<String> = state
        .job
        .as_ref()
        .map(|job| job.labels.iter().map(|l| l.to_lowercase()).collect())
        .unwrap_or_default();
    labels.sort();
    labels.dedup();
    labels
}

impl<B: BatchSystem, G: GitHubApi, P: Placer> Engine<B, G, P> {
    pub fn new(
        kv: TypedKv<JobState>,
        batch: B,
        github: G,
        placer: P,
        settings: Settings,
        admission: Admission,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            kv,
            batch,
            github,
            placer,
            settings,
            metrics,
            admission: Mutex::new(admission),
            live: Mutex::new(HashMap::new()),
            submitting: Mutex::new(HashSet::new()),
            minting: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            scopes: Mutex::new(HashSet::new()),
            passes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Rebuilds the in-memory views from the bucket (at start): waiting
    /// jobs go back into admission, submitted ones count against the caps.
    pub async fn rebuild(&self) -> Result<usize, EngineError> {
        let keys = self.kv.keys().await?;
        let mut live = 0;
        for key in keys {
            let Some(entry) = self.kv.get(&key).await? else {
                continue;
            };
            if self.remember(&entry.value) {
                live += 1;
            }
        }
        self.wake.notify_one();
        Ok(live)
    }

    /// Keeps the in-memory views in step with a record just read or
    /// written; returns whether the record is live.
    pub(crate) fn remember(&self, state: &JobState) -> bool {
        let job_id = record::job_id(state);
        if state.job.is_some() {
            let scope = crate::jit::scope(self.settings.runner_scope, state);
            self.scopes.lock().expect("scopes lock").insert(scope);
        }
        let mut admission = self.admission.lock().expect("admission lock");
        let mut live = self.live.lock().expect("live lock");
        if record::is_terminal(state) {
            live.remove(&job_id);
            if admission.finish(job_id) {
                // A slot is free: someone waiting may start.
                self.wake.notify_one();
            }
            return false;
        }
        let previous = live.insert(job_id, state.clone());
        if state.phase() == JobPhase::Running
            && previous.is_some_and(|previous| previous.phase() != JobPhase::Running)
        {
            let waiting = candidate(state);
            let waited_ms = (now_ms() - waiting.queued_at_unix_ms).max(0);
            self.metrics
                .queued_to_running(&waiting.pool, waited_ms as f64 / 1000.0);
        }
        match state.phase() {
            JobPhase::Queued if !self.is_submitting_here(job_id) => {
                // Back to waiting (an early death, a crash mid-submission):
                // its old slot is free until it is admitted again.
                admission.finish(job_id);
                admission.wait(candidate(state));
            }
            JobPhase::Queued => {}
            _ => {
                admission.start(candidate(state));
            }
        }
        true
    }

    pub(crate) fn is_submitting_here(&self, job_id: i64) -> bool {
        self.submitting
            .lock()
            .expect("submitting lock")
            .contains(&job_id)
    }

    /// Reads `job_id`'s record, lets `change` decide, and writes the result
    /// with compare-and-set, again from a fresh read when another writer
    /// won. Returns the record as it now stands.
    pub async fn modify(
        &self,
        job_id: i64,
        mut change: impl FnMut(JobState) -> Change,
    ) -> Result<Option<JobState>, EngineError> {
        let key = job_id.to_string();
        for _ in 0..8 {
            let Some(current) = self.kv.get(&key).await? else {
                return Ok(None);
            };
            match change(current.value.clone()) {
                Change::Keep => return Ok(Some(current.value)),
                Change::Write(next) => match self.kv.update(&key, &next, current.revision).await {
                    Ok(_) => {
                        self.remember(&next);
                        return Ok(Some(next));
                    }
                    Err(ContractError::RevisionMismatch { .. }) => continue,
                    Err(err) => return Err(err.into()),
                },
            }
        }
        Err(EngineError::Contended { job_id })
    }

    /// New demand: record it (or its refusal) durably; the caller acks
    /// after this returns Ok. Duplicates and redeliveries change nothing.
    pub async fn on_queued(&self, job: QueuedJob) -> Result<(), EngineError> {
        // One round trip: `create` itself tells a duplicate apart.
        let key = job.job_id.to_string();
        let now = now_ms();
        let placed = self.placer.place(&job);
        let mut state = record::queued(job, now);
        match &placed {
            Ok(decision) => state.placement = Some(decision.placement.clone()),
            Err(refusal) => state = record::unplaceable(state, &refusal.to_string(), now),
        }
        match self.kv.create(&key, &state).await {
            Ok(_) => {
                if let Err(refusal) = placed {
                    let job = state.job.as_ref().expect("set above");
                    warn!(
                        job_id = job.job_id,
                        repo = %job.repository,
                        labels = ?job.labels,
                        reason = %refusal,
                        "job refused by the placement policy"
                    );
                    self.metrics.unplaceable(refusal.metric_label());
                }
                self.remember(&state);
                self.wake.notify_one();
                Ok(())
            }
            Err(ContractError::AlreadyExists { .. }) => {
                self.metrics.duplicate_demand();
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// A job left `queued` on GitHub: withdraw what no one needs.
    pub async fn on_status(&self, change: JobStatusChange) -> Result<(), EngineError> {
        let status = change.status();
        let now = now_ms();
        let updated = self
            .modify(change.job_id, |state| {
                let run_attempt = state.job.as_ref().map_or(0, |job| job.run_attempt);
                if record::is_terminal(&state)
                    || change.run_attempt < run_attempt
                    || state.github_status() != JobStatus::Unspecified
                {
                    return Change::Keep;
                }
                let mut next = state;
                next.github_status = status as i32;
                next.updated_at_unix_ms = now;
                if next.phase() == JobPhase::Queued && !record::is_submitting(&next) {
                    next =
                        record::withdrawn(next, &format!("GitHub: {}", status.as_str_name()), now);
                }
                Change::Write(next)
            })
            .await?;
        let Some(state) = updated else {
            return Ok(());
        };
        if state.phase() == JobPhase::Withdrawn {
            self.metrics.reconcile_action("withdrawn_before_submit");
            info!(
                job_id = change.job_id,
                repo = %change.repository,
                reason = %state.reason,
                "demand withdrawn before submission"
            );
        } else if state.phase() == JobPhase::Submitted && !self.needed_elsewhere(&state) {
            crate::reconcile::withdraw(self, &state, "GitHub job left queued").await?;
        }
        Ok(())
    }

    /// What a launcher reports: its runner took a job (RUNNING), or ended
    /// after one (DONE). Events of another attempt's Slurm job are ignored;
    /// a runner that ended without work is left to reconciliation, which
    /// sees its Slurm job end.
    pub async fn on_runner_event(&self, event: RunnerEvent) -> Result<(), EngineError> {
        let kind = event.kind();
        let now = now_ms();
        let updated = self
            .modify(event.job_id, |state| {
                if state.slurm_job_id != event.slurm_job_id || record::is_terminal(&state) {
                    return Change::Keep;
                }
                match (kind, state.phase()) {
                    (
                        RunnerEventKind::JobStarted,
                        JobPhase::Queued | JobPhase::Submitted | JobPhase::Launching,
                    ) => Change::Write(record::running(state, now)),
                    (
                        RunnerEventKind::JobCompleted
                        | RunnerEventKind::RunnerExited
                        | RunnerEventKind::CleanedUp,
                        JobPhase::Running,
                    ) => {
                        let reason = format!("runner finished: {}", event.result);
                        Change::Write(record::done(state, &reason, now))
                    }
                    _ => Change::Keep,
                }
            })
            .await?;
        if let Some(state) = updated {
            tracing::debug!(
                job_id = event.job_id,
                slurm_job_id = event.slurm_job_id,
                event = kind.as_str_name(),
                phase = state.phase().as_str_name(),
                "runner event"
            );
        }
        Ok(())
    }

    /// Whether a record whose own demand is gone should keep its Slurm job
    /// because another job with the same labels is still queued on GitHub
    /// while its runner went to someone else.
    pub(crate) fn needed_elsewhere(&self, state: &JobState) -> bool {
        let key = label_key(state);
        let own = record::job_id(state);
        let live = self.live.lock().expect("live lock");
        let same = || {
            live.values()
                .filter(|other| record::job_id(other) != own && label_key(other) == key)
        };
        let orphans = same()
            .filter(|other| {
                other.github_status() == JobStatus::Unspecified
                    && other.phase() == JobPhase::Running
            })
            .count();
        let spare = same()
            .filter(|other| {
                other.github_status() != JobStatus::Unspecified
                    && matches!(other.phase(), JobPhase::Submitted | JobPhase::Launching)
            })
            .count();
        orphans > spare
    }

    /// Live records, for reconciliation.
    pub(crate) fn live_records(&self) -> Vec<JobState> {
        self.live
            .lock()
            .expect("live lock")
            .values()
            .cloned()
            .collect()
    }
}

impl Placer for crate::placement::Policy {
    fn place(&self, job: &QueuedJob) -> Result<Decision, Refusal> {
        crate::placement::Policy::place(self, &job.labels, Some(&job.repository))
    }
}
