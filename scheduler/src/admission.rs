//! Temporary admission without caps (replaced by the fair, capped one).

use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub job_id: i64,
    pub repository: String,
    pub owner: String,
    pub pool: String,
    pub queued_at_unix_ms: i64,
}

#[derive(Debug, Default)]
pub struct Admission {
    waiting: BTreeMap<(i64, i64), Candidate>,
    active: HashSet<i64>,
}

impl Admission {
    pub fn wait(&mut self, candidate: Candidate) {
        if !self.active.contains(&candidate.job_id) {
            self.waiting
                .insert((candidate.queued_at_unix_ms, candidate.job_id), candidate);
        }
    }

    pub fn start(&mut self, candidate: Candidate) {
        self.waiting
            .retain(|_, waiting| waiting.job_id != candidate.job_id);
        self.active.insert(candidate.job_id);
    }

    pub fn finish(&mut self, job_id: i64) {
        self.waiting.retain(|_, waiting| waiting.job_id != job_id);
        self.active.remove(&job_id);
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Candidate> {
        let key = *self.waiting.keys().next()?;
        let candidate = self.waiting.remove(&key)?;
        self.active.insert(candidate.job_id);
        Some(candidate)
    }
}
