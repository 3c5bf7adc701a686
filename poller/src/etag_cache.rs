//! The poll's conditional-request memory: the ETag and body of each page
//! it read, so a `304 Not Modified` (free of rate limit) can be answered
//! from here. Bounded: after each pass over a repository, the job pages of
//! runs that pass did not touch are dropped (a finished run is never read
//! again), and an unwatched repository's entries go with it.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Pages by request path: `(etag, body)`.
#[derive(Debug, Default)]
pub struct EtagCache {
    pages: HashMap<String, (String, Value)>,
}

/// `/repos/{repository}/actions/runs/`: where a repository's run pages
/// (and their job pages) start.
fn runs_prefix(repository: &str) -> String {
    format!("/repos/{repository}/actions/runs/")
}

/// The run id of a job page path `/repos/o/r/actions/runs/{id}/jobs?...`.
fn run_of_jobs_page(path: &str, prefix: &str) -> Option<i64> {
    let rest = path.strip_prefix(prefix)?;
    let (id, tail) = rest.split_once('/')?;
    tail.starts_with("jobs").then(|| id.parse().ok()).flatten()
}

impl EtagCache {
    /// The ETag held for `path`.
    pub fn etag(&self, path: &str) -> Option<&str> {
        self.pages.get(path).map(|(etag, _)| etag.as_str())
    }

    /// The body held for `path`.
    pub fn body(&self, path: &str) -> Option<&Value> {
        self.pages.get(path).map(|(_, body)| body)
    }

    /// Remembers `body` of `path` under `etag`.
    pub fn put(&mut self, path: &str, etag: String, body: Value) {
        self.pages.insert(path.to_string(), (etag, body));
    }

    /// Drops the job pages of `repository`'s runs other than `live`.
    pub fn keep_runs(&mut self, repository: &str, live: &HashSet<i64>) {
        let prefix = runs_prefix(repository);
        self.pages.retain(|path, _| {
            run_of_jobs_page(path, &prefix).is_none_or(|run| live.contains(&run))
        });
    }

    /// Drops everything of `repository` (no longer watched).
    pub fn forget_repository(&mut self, repository: &str) {
        let prefix = format!("/repos/{repository}/");
        self.pages.retain(|path, _| !path.starts_with(&prefix));
    }

    /// Pages held.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(paths: &[&str]) -> EtagCache {
        let mut cache = EtagCache::default();
        for path in paths {
            cache.put(path, "\"e\"".into(), Value::Null);
        }
        cache
    }

    #[test]
    fn job_pages_of_runs_no_longer_seen_are_dropped_and_listings_kept() {
        let mut cache = cache(&[
            "/repos/a/b/actions/runs?status=queued&per_page=100&page=1",
            "/repos/a/b/actions/runs/1/jobs?per_page=100&page=1",
            "/repos/a/b/actions/runs/1/jobs?per_page=100&page=2",
            "/repos/a/b/actions/runs/2/jobs?per_page=100&page=1",
            "/repos/a/bc/actions/runs/3/jobs?per_page=100&page=1",
        ]);
        cache.keep_runs("a/b", &HashSet::from([1]));
        assert_eq!(cache.len(), 4);
        assert!(
            cache
                .etag("/repos/a/b/actions/runs/2/jobs?per_page=100&page=1")
                .is_none()
        );
        assert!(
            cache
                .etag("/repos/a/bc/actions/runs/3/jobs?per_page=100&page=1")
                .is_some(),
            "another repository's pages are its own"
        );
        cache.forget_repository("a/b");
        assert_eq!(cache.len(), 1);
    }
}
