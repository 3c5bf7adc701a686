//! The reconciliation poll as a service: repositories polled in turn, busy
//! ones (queued or running work) more often, within the request budget and
//! what GitHub reports left of it, never into a limit GitHub announced.
//! What a pass finds is published; what failed to publish is offered again
//! by the next pass; demand the scheduler lost is announced again
//! ([`crate::announce`]).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use gha_proto::v1::JobState;
use gha_proto::{Contract, TypedKv};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::announce;
use crate::cli::Watched;
use crate::health::PollStatus;
use crate::metrics::PollerMetrics;
use crate::observe::Observation;
use crate::policy::JobPolicy;
use crate::poll::{Pass, RepoPoller};
use crate::repos;
use gha_github::pacing::Pacer;
use gha_github::{GitHubClient, GitHubError};

/// How often an organisation's repository list is read again.
const RESOLVE_EVERY: Duration = Duration::from_secs(600);

/// Default grace before a queued job without a record is announced again.
pub const REANNOUNCE_AFTER: Duration = Duration::from_secs(300);

/// Everything the loop needs.
pub struct PollLoop {
    pub github: Arc<GitHubClient>,
    pub contract: Contract,
    pub watched: Watched,
    pub policy: JobPolicy,
    /// Between polls of an idle repository.
    pub idle_interval: Duration,
    /// Between polls of a repository with queued or running work.
    pub busy_interval: Duration,
    /// Counted requests per hour the poll may spend.
    pub budget_per_hour: u32,
    /// A job queued on GitHub this long, published, and without a record
    /// in `gha_jobs`, is announced again.
    pub reannounce_after: Duration,
    pub metrics: PollerMetrics,
    /// Where the loop reports its passes (for `/healthz`).
    pub status: Arc<PollStatus>,
}

/// `interval` give or take a tenth, so repositories drift apart.
fn jittered(interval: Duration, repo: &str) -> Duration {
    let mut hasher = DefaultHasher::new();
    (repo, Instant::now()).hash(&mut hasher);
    let tenth = interval.as_millis() as u64 / 10;
    if tenth == 0 {
        return interval;
    }
    let offset = hasher.finish() % (2 * tenth + 1);
    interval + Duration::from_millis(offset) - Duration::from_millis(tenth)
}

/// The instant of `reset` (Unix seconds), from now.
fn instant_of(reset: i64) -> Instant {
    let wait = (reset - chrono::Utc::now().timestamp()).max(0) as u64;
    Instant::now() + Duration::from_secs(wait + 1)
}

/// The loop's state between passes.
struct State {
    poller: RepoPoller,
    pacer: Pacer,
    /// The scheduler's records, once opened.
    records: Option<TypedKv<JobState>>,
    /// The open records were read into `poller` (after a start).
    rederived: bool,
}

impl PollLoop {
    /// Polls until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let identity = self.github.identity();
        self.status.started(&identity, Instant::now());
        let mut state = State {
            poller: RepoPoller::new(self.github.clone(), self.policy.clone()),
            pacer: Pacer::new(self.budget_per_hour, Instant::now()),
            records: None,
            rederived: false,
        };
        let mut due: HashMap<String, Instant> = HashMap::new();
        let mut resolved_at: Option<Instant> = None;
        loop {
            if resolved_at.is_none_or(|at| at.elapsed() >= RESOLVE_EVERY) {
                match repos::resolve(&self.github, &self.watched).await {
                    Ok(names) => {
                        for gone in due.keys().filter(|name| !names.contains(name)) {
                            state.poller.forget_repository(gone);
                        }
                        due.retain(|name, _| names.contains(name));
                        for name in names {
                            due.entry(name).or_insert_with(Instant::now);
                        }
                        resolved_at = Some(Instant::now());
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "listing the watched repositories failed");
                        self.status
                            .failed(&identity, err.to_string(), Instant::now());
                        self.note_limits(&err, &mut state.pacer);
                        resolved_at = Some(Instant::now() - RESOLVE_EVERY + self.idle_interval);
                    }
                }
            }
            if !state.rederived && !due.is_empty() {
                let watched: HashSet<&String> = due.keys().collect();
                self.rederive(&mut state, &watched).await;
            }
            let Some((repo, at)) = due
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(r, a)| (r.clone(), *a))
            else {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.idle_interval) => continue,
                }
            };
            let start = at.max(state.pacer.ready_at(Instant::now()));
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(start) => {}
            }
            let next = self.pass(&mut state, &repo).await;
            due.insert(repo, next);
        }
    }

    /// After a start: follows the jobs the scheduler holds open records of
    /// (their status may have changed while the poller was down). Tried
    /// again before each pass until the bucket answers.
    async fn rederive(&self, state: &mut State, watched: &HashSet<&String>) {
        let installation = self
            .github
            .installation()
            .map_or(0, |id| i64::try_from(id).unwrap_or(0));
        let Some(records) = self.records(state).await else {
            return;
        };
        match announce::open_records(&records, installation).await {
            Ok(open) => {
                let mut followed = 0;
                for (job_id, repository, run_id) in open {
                    if watched.contains(&repository) {
                        state.poller.track(job_id, &repository, run_id);
                        followed += 1;
                    }
                }
                tracing::info!(followed, "following the open records of the scheduler");
                state.rederived = true;
            }
            Err(err) => {
                tracing::warn!(error = %err, "reading the scheduler's records failed; trying again")
            }
        }
    }

    /// The `gha_jobs` bucket, opened once it can be.
    async fn records(&self, state: &mut State) -> Option<TypedKv<JobState>> {
        if state.records.is_none() {
            match self.contract.job_states().await {
                Ok(records) => state.records = Some(records),
                Err(err) => tracing::warn!(error = %err, "opening the scheduler's records failed"),
            }
        }
        state.records.clone()
    }

    /// One pass over `repo`; returns when it is due again.
    async fn pass(&self, state: &mut State, repo: &str) -> Instant {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let result = state.poller.poll(repo, now_ms).await;
        if let Some(budget) = self.github.budget() {
            self.metrics
                .rate_limit_remaining
                .set(i64::from(budget.remaining));
            let reset_in =
                u64::try_from(budget.reset - chrono::Utc::now().timestamp()).unwrap_or(0);
            state.pacer.observe_budget(
                budget.remaining,
                budget.limit,
                Duration::from_secs(reset_in),
                Instant::now(),
            );
        }
        self.metrics
            .etag_cache_entries
            .set(i64::try_from(state.poller.cache_entries()).unwrap_or(i64::MAX));
        let pass = match result {
            Ok(pass) => pass,
            Err(err) => {
                tracing::warn!(repository = repo, error = %err, "poll pass failed");
                self.metrics.pass(err.metric_label());
                self.status
                    .failed(&self.github.identity(), err.to_string(), Instant::now());
                self.note_limits(&err, &mut state.pacer);
                return Instant::now() + jittered(self.idle_interval, repo);
            }
        };
        self.metrics.pass("ok");
        self.status
            .succeeded(&self.github.identity(), Instant::now());
        self.metrics.requests.inc_by(u64::from(pass.requests));
        self.metrics
            .not_modified
            .inc_by(u64::from(pass.not_modified));
        state
            .pacer
            .spend(pass.requests - pass.not_modified, Instant::now());
        for (job_id, refusal) in &pass.refused {
            tracing::debug!(repository = repo, job_id, reason = %refusal, "refused");
            self.metrics.refusal(refusal.metric_label());
        }
        let interval = if pass.busy {
            self.busy_interval
        } else {
            self.idle_interval
        };
        self.publish(state, pass, now_ms).await;
        Instant::now() + jittered(interval, repo)
    }

    /// Publishes what `pass` found; a failed publication is offered again
    /// by the next pass. Then announces again the demand the scheduler
    /// has no record of.
    async fn publish(&self, state: &mut State, pass: Pass, now_ms: i64) {
        for observation in pass.observations {
            let (job_id, published, kind) = match &observation {
                Observation::Queued(job) => {
                    (job.job_id, self.contract.publish(job).await, "queued")
                }
                Observation::Changed(change) => {
                    (change.job_id, self.contract.publish(change).await, "status")
                }
                Observation::Ignored(_) => continue,
            };
            match published {
                Ok(published) => {
                    self.metrics.publication("poll", kind, published.duplicate);
                    state.poller.acknowledge(&observation);
                }
                Err(err) => {
                    tracing::error!(job_id, error = %err, "publishing failed; offering it again next pass");
                }
            }
        }
        let overdue: Vec<_> = pass
            .still_queued
            .into_iter()
            .filter_map(|job| {
                announce::reannounce_generation(
                    job.created_at_unix_ms,
                    now_ms,
                    self.reannounce_after,
                )
                .map(|generation| (job, generation))
            })
            .collect();
        if overdue.is_empty() {
            return;
        }
        let Some(records) = self.records(state).await else {
            return;
        };
        for (job, generation) in overdue {
            match announce::unrecorded(&records, &job).await {
                Ok(true) => match announce::publish_again(&self.contract, &job, generation).await {
                    Ok(published) => {
                        if !published.duplicate {
                            tracing::warn!(
                                job_id = job.job_id,
                                generation,
                                "queued job without a record: announced again"
                            );
                        }
                        self.metrics
                            .publication("poll", "queued_again", published.duplicate);
                    }
                    Err(err) => {
                        tracing::error!(job_id = job.job_id, error = %err, "announcing again failed")
                    }
                },
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(job_id = job.job_id, error = %err, "reading the job's record failed");
                }
            }
        }
    }

    fn note_limits(&self, err: &GitHubError, pacer: &mut Pacer) {
        match err {
            GitHubError::RateLimited { reset } => pacer.block_until(instant_of(*reset)),
            GitHubError::SecondaryLimited { retry_after } => {
                pacer.block_until(Instant::now() + *retry_after)
            }
            _ => {}
        }
    }
}
