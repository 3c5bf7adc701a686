//! One reconciliation pass over a repository: its `queued` and
//! `in_progress` runs (queued jobs hide inside in-progress runs), every page,
//! then each run's jobs. Conditional requests throughout: an unchanged page
//! answers 304, costs no rate limit, and its cached body is reused.
//!
//! Jobs published as queued are remembered ([`RepoPoller::acknowledge`],
//! once their publication succeeded) until a status change of theirs has
//! been published; if their run drops out of both lists first (cancelled,
//! finished), the run's jobs are read once more, so demand is always
//! withdrawn. Every status change of an accepted job is offered until its
//! publication succeeds (JetStream's dedup makes a repeat free), and after
//! a restart the jobs to follow are taken from the scheduler's records
//! ([`RepoPoller::track`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use gha_proto::Envelope;
use gha_proto::v1::{JobSource, QueuedJob};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::etag_cache::EtagCache;
use crate::observe::{Observation, observe};
use crate::policy::{JobPolicy, Refusal};
use crate::recent::RecentIds;

/// Status changes remembered as published (a repeat would be free, but
/// costs a publish).
const PUBLISHED_CHANGES: usize = 100_000;
use gha_github::types::{Repository, WorkflowJob, WorkflowRun};
use gha_github::{Fetched, GitHubClient, GitHubError};

#[derive(Deserialize)]
struct RunsPage {
    workflow_runs: Vec<WorkflowRun>,
}

#[derive(Deserialize)]
struct JobsPage {
    jobs: Vec<WorkflowJob>,
}

/// What one pass over a repository found.
#[derive(Debug, Default)]
pub struct Pass {
    /// Demand and its withdrawal, in the order found.
    pub observations: Vec<Observation>,
    /// Jobs published in an earlier pass and still queued on GitHub:
    /// candidates to announce again when the scheduler has no record.
    pub still_queued: Vec<QueuedJob>,
    /// Jobs the policy refused, and why.
    pub refused: Vec<(i64, Refusal)>,
    /// The repository has queued or running work: poll it sooner.
    pub busy: bool,
    /// Requests sent, and how many of them were answered 304.
    pub requests: u32,
    pub not_modified: u32,
}

/// A queued job published and not yet seen leaving `queued`.
#[derive(Debug, Clone)]
struct Tracked {
    repository: String,
    run_id: i64,
}

/// The poll's memory across passes: ETags with their bodies, the jobs
/// whose demand is outstanding, the status changes published.
pub struct RepoPoller {
    client: Arc<GitHubClient>,
    policy: JobPolicy,
    /// The installation jobs are seen through (0 with a token): the
    /// scheduler mints their runners through it.
    installation: i64,
    cache: EtagCache,
    tracked: HashMap<i64, Tracked>,
    published_changes: RecentIds,
}

impl RepoPoller {
    pub fn new(client: Arc<GitHubClient>, policy: JobPolicy) -> Self {
        let installation = client
            .installation()
            .map_or(0, |id| i64::try_from(id).unwrap_or(0));
        Self {
            client,
            policy,
            installation,
            cache: EtagCache::default(),
            tracked: HashMap::new(),
            published_changes: RecentIds::new(PUBLISHED_CHANGES),
        }
    }

    /// Pages held by the ETag cache.
    pub fn cache_entries(&self) -> usize {
        self.cache.len()
    }

    /// Jobs whose demand is outstanding.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Follows `job_id` of run `run_id` in `repository` as if its demand
    /// had been published (after a restart: a record the scheduler holds).
    pub fn track(&mut self, job_id: i64, repository: &str, run_id: i64) {
        self.tracked.insert(
            job_id,
            Tracked {
                repository: repository.to_string(),
                run_id,
            },
        );
    }

    /// Forgets everything of a repository no longer watched.
    pub fn forget_repository(&mut self, repository: &str) {
        self.cache.forget_repository(repository);
        self.tracked
            .retain(|_, tracked| tracked.repository != repository);
    }

    /// Records that `observation` reached JetStream: a queued job is
    /// followed until it leaves the queue, a status change is not offered
    /// again. Until then each pass offers it again.
    pub fn acknowledge(&mut self, observation: &Observation) {
        match observation {
            Observation::Queued(job) => self.track(job.job_id, &job.repository, job.run_id),
            Observation::Changed(change) => {
                self.tracked.remove(&change.job_id);
                if let Some(id) = change.msg_id() {
                    self.published_changes.insert(&id);
                }
            }
            Observation::Ignored(_) => {}
        }
    }

    /// GET with the cached ETag; a 304 returns the cached body.
    async fn get<T: DeserializeOwned>(
        &mut self,
        path: &str,
        pass: &mut Pass,
    ) -> Result<(T, Option<String>), GitHubError> {
        let etag = self.cache.etag(path).map(str::to_string);
        pass.requests += 1;
        let (value, next) = match self.client.get::<Value>(path, etag.as_deref()).await? {
            Fetched::Fresh { value, etag, next } => {
                if let Some(etag) = etag {
                    self.cache.put(path, etag, value.clone());
                }
                (value, next)
            }
            Fetched::NotModified => {
                pass.not_modified += 1;
                let cached = self.cache.body(path).cloned();
                (cached.unwrap_or(Value::Null), None)
            }
        };
        let decoded =
            serde_json::from_value(value).map_err(|err| GitHubError::decode(path, err))?;
        Ok((decoded, next))
    }

    /// Every page, following `Link: rel="next"`. A cached first page means
    /// the later ones are fetched (conditionally) as well.
    async fn all_pages<P: DeserializeOwned, T>(
        &mut self,
        first: String,
        items: impl Fn(P) -> Vec<T>,
        pass: &mut Pass,
    ) -> Result<Vec<T>, GitHubError> {
        let mut all = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(path) = next.take() {
            let (page, link): (P, Option<String>) = self.get(&path, pass).await?;
            let page_items = items(page);
            let full = page_items.len() == 100;
            all.extend(page_items);
            pages += 1;
            next = link.or_else(|| {
                // A 304 has no Link header: a full page means there may be
                // another, whose URL we know.
                full.then(|| page_path(&path, pages + 1))
            });
        }
        Ok(all)
    }

    /// One pass over `repository` (`owner/name`).
    pub async fn poll(&mut self, repository: &str, now_ms: i64) -> Result<Pass, GitHubError> {
        let mut pass = Pass::default();
        let mut runs: Vec<WorkflowRun> = Vec::new();
        let mut seen_runs = HashSet::new();
        for status in ["queued", "in_progress"] {
            let first =
                format!("/repos/{repository}/actions/runs?status={status}&per_page=100&page=1");
            for run in self
                .all_pages(first, |page: RunsPage| page.workflow_runs, &mut pass)
                .await?
            {
                if seen_runs.insert(run.id) {
                    runs.push(run);
                }
            }
        }
        pass.busy = !runs.is_empty();
        for run in &runs {
            let first = format!(
                "/repos/{repository}/actions/runs/{}/jobs?per_page=100&page=1",
                run.id
            );
            let jobs = self
                .all_pages(first, |page: JobsPage| page.jobs, &mut pass)
                .await?;
            let repo = run
                .repository
                .clone()
                .unwrap_or_else(|| Repository::named(repository));
            for job in jobs {
                self.consider(&job, &repo, run.is_from_fork(), now_ms, &mut pass);
            }
        }
        // Outstanding demand whose run left both lists: read those runs'
        // jobs (one listing per run, not a request per job).
        let mut lost_runs: Vec<i64> = self
            .tracked
            .values()
            .filter(|tracked| {
                tracked.repository == repository && !seen_runs.contains(&tracked.run_id)
            })
            .map(|tracked| tracked.run_id)
            .collect();
        lost_runs.sort_unstable();
        lost_runs.dedup();
        let repo = Repository::named(repository);
        let mut live_runs = seen_runs.clone();
        for run_id in lost_runs {
            live_runs.insert(run_id);
            let first =
                format!("/repos/{repository}/actions/runs/{run_id}/jobs?per_page=100&page=1");
            let jobs = match self
                .all_pages(first, |page: JobsPage| page.jobs, &mut pass)
                .await
            {
                Ok(jobs) => jobs,
                Err(GitHubError::NotFound { .. }) => {
                    // The run was deleted: nothing will run its jobs.
                    self.tracked.retain(|_, tracked| tracked.run_id != run_id);
                    continue;
                }
                Err(err) => return Err(err),
            };
            for job in &jobs {
                if self.tracked.contains_key(&job.id) {
                    self.consider(job, &repo, false, now_ms, &mut pass);
                }
            }
        }
        self.cache.keep_runs(repository, &live_runs);
        Ok(pass)
    }

    fn consider(
        &mut self,
        job: &WorkflowJob,
        repo: &Repository,
        from_fork: bool,
        now_ms: i64,
        pass: &mut Pass,
    ) {
        if let Err(refusal) = self.policy.check_labels(&job.labels) {
            pass.refused.push((job.id, refusal));
            return;
        }
        match observe(job, repo, self.installation, JobSource::Poll, now_ms) {
            Observation::Queued(queued) => {
                if self.tracked.contains_key(&job.id) {
                    // Published already, still waiting.
                    pass.still_queued.push(queued);
                    return;
                }
                if let Err(refusal) = self.policy.check_fork(from_fork) {
                    pass.refused.push((job.id, refusal));
                    return;
                }
                pass.observations.push(Observation::Queued(queued));
            }
            Observation::Changed(change) => {
                let published = change
                    .msg_id()
                    .is_some_and(|id| self.published_changes.contains(&id));
                if !published {
                    pass.observations.push(Observation::Changed(change));
                }
            }
            Observation::Ignored(_) => {}
        }
    }
}

/// `path` with its `page=` parameter set to `page` (moved to the end).
fn page_path(path: &str, page: usize) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|param| !param.is_empty() && !param.starts_with("page="))
        .collect();
    let page = format!("page={page}");
    params.push(&page);
    format!("{base}?{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_path_replaces_only_the_page_parameter() {
        assert_eq!(
            page_path("/r?status=queued&per_page=100&page=1", 2),
            "/r?status=queued&per_page=100&page=2"
        );
        assert_eq!(
            page_path("/r?per_page=100&page=7&x=1", 8),
            "/r?per_page=100&x=1&page=8"
        );
    }
}
