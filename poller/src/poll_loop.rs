//! The reconciliation poll as a service: repositories polled in turn, busy
//! ones (queued or running work) more often, within the request budget, and
//! never into a limit GitHub announced. What a pass finds is published.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use gha_proto::Contract;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::Watched;
use crate::metrics::PollerMetrics;
use crate::observe::Observation;
use crate::policy::JobPolicy;
use crate::poll::RepoPoller;
use crate::repos;
use gha_github::pacing::Pacer;
use gha_github::{GitHubClient, GitHubError};

/// How often an organisation's repository list is read again.
const RESOLVE_EVERY: Duration = Duration::from_secs(600);

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
    pub metrics: PollerMetrics,
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

impl PollLoop {
    /// Polls until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut poller = RepoPoller::new(self.github.clone(), self.policy.clone());
        let mut pacer = Pacer::new(self.budget_per_hour, Instant::now());
        let mut due: HashMap<String, Instant> = HashMap::new();
        let mut resolved_at: Option<Instant> = None;
        loop {
            if resolved_at.is_none_or(|at| at.elapsed() >= RESOLVE_EVERY) {
                match repos::resolve(&self.github, &self.watched).await {
                    Ok(names) => {
                        due.retain(|name, _| names.contains(name));
                        for name in names {
                            due.entry(name).or_insert_with(Instant::now);
                        }
                        resolved_at = Some(Instant::now());
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "listing the watched repositories failed");
                        self.note_limits(&err, &mut pacer);
                        resolved_at = Some(Instant::now() - RESOLVE_EVERY + self.idle_interval);
                    }
                }
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
            let start = at.max(pacer.ready_at(Instant::now()));
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(start) => {}
            }
            let next = self.pass(&mut poller, &mut pacer, &repo).await;
            due.insert(repo, next);
        }
    }

    /// One pass over `repo`; returns when it is due again.
    async fn pass(&self, poller: &mut RepoPoller, pacer: &mut Pacer, repo: &str) -> Instant {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let result = poller.poll(repo, now_ms).await;
        if let Some(budget) = self.github.budget() {
            self.metrics
                .rate_limit_remaining
                .set(i64::from(budget.remaining));
        }
        let pass = match result {
            Ok(pass) => pass,
            Err(err) => {
                tracing::warn!(repository = repo, error = %err, "poll pass failed");
                self.metrics.pass(err.metric_label());
                self.note_limits(&err, pacer);
                return Instant::now() + jittered(self.idle_interval, repo);
            }
        };
        self.metrics.pass("ok");
        self.metrics.requests.inc_by(u64::from(pass.requests));
        self.metrics
            .not_modified
            .inc_by(u64::from(pass.not_modified));
        pacer.spend(pass.requests - pass.not_modified, Instant::now());
        for (job_id, refusal) in &pass.refused {
            tracing::debug!(repository = repo, job_id, reason = %refusal, "refused");
            self.metrics.refusal(refusal.metric_label());
        }
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
                Ok(published) => self.metrics.publication("poll", kind, published.duplicate),
                Err(err) => {
                    tracing::error!(job_id, error = %err, "publishing failed; offering it again next pass");
                    poller.forget(job_id);
                }
            }
        }
        let interval = if pass.busy {
            self.busy_interval
        } else {
            self.idle_interval
        };
        Instant::now() + jittered(interval, repo)
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
