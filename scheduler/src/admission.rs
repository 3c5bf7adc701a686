//! Admission: which placed job may start now under the concurrency caps.
//!
//! Pure bookkeeping of active runners per pool, repository and org, and of
//! the jobs waiting for capacity. [`Admission::next`] is fair across
//! repositories: it goes round-robin over the repositories with waiting
//! jobs, so one busy repository cannot starve another; within a repository
//! the oldest job that fits goes first. A job held back by its own
//! repository's, org's or pool's cap does not hold back other jobs.
//!
//! Repository and owner names are compared case-insensitively, as GitHub
//! does.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The concurrency caps, from the policy's `[defaults]` and pools. `None`:
/// no cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Runners across all pools.
    pub global: Option<u32>,
    /// Runners per pool, by pool name.
    pub per_pool: BTreeMap<String, u32>,
    /// Runners per repository, unless overridden.
    pub per_repo: Option<u32>,
    /// Lower-cased `owner/name` -> cap.
    pub repo_overrides: BTreeMap<String, u32>,
    /// Runners per org (repository owner), unless overridden.
    pub per_org: Option<u32>,
    /// Lower-cased owner -> cap.
    pub org_overrides: BTreeMap<String, u32>,
}

impl Limits {
    fn repo_cap(&self, repo: &str) -> Option<u32> {
        self.repo_overrides.get(repo).copied().or(self.per_repo)
    }

    fn org_cap(&self, org: &str) -> Option<u32> {
        self.org_overrides.get(org).copied().or(self.per_org)
    }
}

/// A placed job that wants a runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// GitHub job id.
    pub job_id: i64,
    /// `owner/name`.
    pub repository: String,
    pub owner: String,
    pub pool: String,
    /// When GitHub queued the job: the order within a repository.
    pub queued_at_unix_ms: i64,
}

/// Active and waiting jobs under [`Limits`].
#[derive(Debug, Default)]
pub struct Admission {
    limits: Limits,
    /// Admitted jobs (submitted or running), by job id.
    active: HashMap<i64, Candidate>,
    active_by_pool: HashMap<String, u32>,
    active_by_repo: HashMap<String, u32>,
    active_by_org: HashMap<String, u32>,
    /// Waiting jobs, by job id.
    waiting: HashMap<i64, Candidate>,
    /// Per lower-cased repository, its waiting jobs oldest first.
    queues: BTreeMap<String, BTreeSet<(i64, i64)>>,
    /// The repository admitted from last: the round-robin resumes after it.
    last_repo: Option<String>,
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits,
            ..Admission::default()
        }
    }

    /// Adds a job to the waiting set. Idempotent: a job already waiting or
    /// active is left as it is (returns `false`).
    pub fn wait(&mut self, candidate: Candidate) -> bool {
        if self.active.contains_key(&candidate.job_id)
            || self.waiting.contains_key(&candidate.job_id)
        {
            return false;
        }
        self.queues
            .entry(key(&candidate.repository))
            .or_default()
            .insert((candidate.queued_at_unix_ms, candidate.job_id));
        self.waiting.insert(candidate.job_id, candidate);
        true
    }

    /// Counts a job as active whatever the caps say: one that is already
    /// running (adopted after a restart). Takes it out of the waiting set.
    /// Idempotent (returns `false` if it was already active).
    pub fn start(&mut self, candidate: Candidate) -> bool {
        if self.active.contains_key(&candidate.job_id) {
            return false;
        }
        self.unwait(candidate.job_id);
        self.activate(candidate);
        true
    }

    /// Forgets a job, active or waiting (it finished, was withdrawn or
    /// refused), freeing its capacity. Idempotent (returns `false` if the
    /// job was unknown).
    pub fn finish(&mut self, job_id: i64) -> bool {
        if self.unwait(job_id).is_some() {
            return true;
        }
        let Some(candidate) = self.active.remove(&job_id) else {
            return false;
        };
        for (map, name) in [
            (&mut self.active_by_pool, candidate.pool.clone()),
            (&mut self.active_by_repo, key(&candidate.repository)),
            (&mut self.active_by_org, key(&candidate.owner)),
        ] {
            if let Some(count) = map.get_mut(&name) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&name);
                }
            }
        }
        true
    }

    /// Admits the next waiting job that may start now, if any: it counts
    /// as active from here on (until [`Admission::finish`]). A job whose
    /// submission then fails goes back with `finish` and `wait`: its
    /// `queued_at` keeps its place within its repository.
    // Not an iterator: each call changes what the next one may admit.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Candidate> {
        if self
            .limits
            .global
            .is_some_and(|cap| self.active.len() >= cap as usize)
        {
            return None;
        }
        // Repositories after the last one served, then from the start.
        let order: Vec<String> = match &self.last_repo {
            Some(last) => {
                let after = self
                    .queues
                    .range::<String, _>((
                        std::ops::Bound::Excluded(last),
                        std::ops::Bound::Unbounded,
                    ))
                    .map(|(repo, _)| repo.clone());
                let before = self
                    .queues
                    .range::<String, _>(..=last)
                    .map(|(repo, _)| repo.clone());
                after.chain(before).collect()
            }
            None => self.queues.keys().cloned().collect(),
        };
        for repo in order {
            if let Some(job_id) = self.first_admissible(&repo) {
                let candidate = self.unwait(job_id)?;
                self.last_repo = Some(repo);
                self.activate(candidate.clone());
                return Some(candidate);
            }
        }
        None
    }

    /// The oldest job of `repo` that fits its repository's, org's and
    /// pool's caps.
    fn first_admissible(&self, repo: &str) -> Option<i64> {
        let queue = self.queues.get(repo)?;
        let (_, first) = queue.first()?;
        let owner = key(&self.waiting[first].owner);
        let below = |cap: Option<u32>, count: Option<&u32>| {
            cap.is_none_or(|cap| count.copied().unwrap_or(0) < cap)
        };
        if !below(self.limits.repo_cap(repo), self.active_by_repo.get(repo))
            || !below(self.limits.org_cap(&owner), self.active_by_org.get(&owner))
        {
            return None;
        }
        queue.iter().map(|(_, id)| *id).find(|id| {
            let pool = &self.waiting[id].pool;
            below(
                self.limits.per_pool.get(pool).copied(),
                self.active_by_pool.get(pool),
            )
        })
    }

    fn unwait(&mut self, job_id: i64) -> Option<Candidate> {
        let candidate = self.waiting.remove(&job_id)?;
        let repo = key(&candidate.repository);
        if let Some(queue) = self.queues.get_mut(&repo) {
            queue.remove(&(candidate.queued_at_unix_ms, job_id));
            if queue.is_empty() {
                self.queues.remove(&repo);
            }
        }
        Some(candidate)
    }

    fn activate(&mut self, candidate: Candidate) {
        *self
            .active_by_pool
            .entry(candidate.pool.clone())
            .or_default() += 1;
        *self
            .active_by_repo
            .entry(key(&candidate.repository))
            .or_default() += 1;
        *self.active_by_org.entry(key(&candidate.owner)).or_default() += 1;
        self.active.insert(candidate.job_id, candidate);
    }

    /// Replaces the caps (a reloaded policy). Jobs already active stay
    /// active even if they now exceed a cap; they only delay new ones.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Jobs admitted and not finished.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Jobs waiting for capacity.
    pub fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// Active jobs in `pool`.
    pub fn active_in_pool(&self, pool: &str) -> u32 {
        self.active_by_pool.get(pool).copied().unwrap_or(0)
    }

    /// Whether `job_id` is waiting.
    pub fn is_waiting(&self, job_id: i64) -> bool {
        self.waiting.contains_key(&job_id)
    }

    /// Whether `job_id` is active.
    pub fn is_active(&self, job_id: i64) -> bool {
        self.active.contains_key(&job_id)
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
