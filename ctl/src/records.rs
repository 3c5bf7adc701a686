//! Reading the scheduler's job records (`gha_jobs`), and which of them a
//! [`Filter`] keeps.

use gha_proto::v1::{JobPhase, JobState};
use gha_proto::{ContractError, Revision, TypedKv};

use crate::cli::Filter;

/// Every record in the bucket (its current revision).
pub async fn all(kv: &TypedKv<JobState>) -> Result<Vec<JobState>, ContractError> {
    let mut records = Vec::new();
    for key in kv.keys().await? {
        if let Some(entry) = kv.get(&key).await? {
            records.push(entry.value);
        }
    }
    Ok(records)
}

/// The revisions the bucket keeps of one job, oldest first.
pub async fn history(
    kv: &TypedKv<JobState>,
    job_id: i64,
) -> Result<Vec<Revision<JobState>>, ContractError> {
    kv.history(&job_id.to_string()).await
}

/// Whether a phase ends a record's life.
pub fn is_terminal(phase: JobPhase) -> bool {
    matches!(
        phase,
        JobPhase::Done | JobPhase::Withdrawn | JobPhase::Unplaceable | JobPhase::Failed
    )
}

/// When the job was queued on GitHub (or first seen, if GitHub did not say).
pub fn queued_at(state: &JobState) -> i64 {
    state.job.as_ref().map_or(0, |job| {
        if job.created_at_unix_ms > 0 {
            job.created_at_unix_ms
        } else {
            job.observed_at_unix_ms
        }
    })
}

/// Whether `filter` keeps `state`.
pub fn matches(filter: &Filter, state: &JobState) -> bool {
    let job = state.job.clone().unwrap_or_default();
    let pool = state
        .placement
        .as_ref()
        .map(|placement| placement.pool.as_str())
        .unwrap_or("");
    filter
        .repo
        .as_ref()
        .is_none_or(|repo| repo.eq_ignore_ascii_case(&job.repository))
        && filter.pool.as_ref().is_none_or(|wanted| wanted == pool)
        && (filter.phases.is_empty() || filter.phases.contains(&state.phase()))
        && (!filter.live || !is_terminal(state.phase()))
        && (filter.runs.is_empty() || filter.runs.contains(&job.run_id))
        && filter
            .since_unix_ms
            .is_none_or(|since| queued_at(state) >= since)
}

/// The records `filter` keeps, newest first, at most `limit`.
pub fn select(records: Vec<JobState>, filter: &Filter, limit: Option<usize>) -> Vec<JobState> {
    let mut kept: Vec<JobState> = records
        .into_iter()
        .filter(|state| matches(filter, state))
        .collect();
    kept.sort_by_key(|state| {
        (
            std::cmp::Reverse(queued_at(state)),
            std::cmp::Reverse(crate::record_job_id(state)),
        )
    });
    if let Some(limit) = limit {
        kept.truncate(limit);
    }
    kept
}

#[cfg(test)]
mod tests {
    use gha_proto::v1::{Placement, QueuedJob};

    use super::*;

    fn record(job_id: i64, repo: &str, pool: &str, phase: JobPhase, created: i64) -> JobState {
        JobState {
            job: Some(QueuedJob {
                job_id,
                run_id: job_id / 10,
                repository: repo.into(),
                created_at_unix_ms: created,
                ..QueuedJob::default()
            }),
            phase: phase as i32,
            placement: Some(Placement {
                pool: pool.into(),
                ..Placement::default()
            }),
            ..JobState::default()
        }
    }

    fn records() -> Vec<JobState> {
        vec![
            record(10, "org/a", "cpu", JobPhase::Running, 100),
            record(11, "org/a", "gpu", JobPhase::Done, 300),
            record(20, "org/b", "cpu", JobPhase::Queued, 200),
            record(21, "Org/B", "cpu", JobPhase::Failed, 50),
        ]
    }

    fn ids(records: &[JobState]) -> Vec<i64> {
        records.iter().map(crate::record_job_id).collect()
    }

    #[test]
    fn newest_first_and_limited() {
        let all = select(records(), &Filter::default(), None);
        assert_eq!(ids(&all), [11, 20, 10, 21]);
        assert_eq!(
            ids(&select(records(), &Filter::default(), Some(2))),
            [11, 20]
        );
    }

    #[test]
    fn repository_matches_case_insensitively_and_pool_exactly() {
        let filter = Filter {
            repo: Some("org/b".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&select(records(), &filter, None)), [20, 21]);
        let filter = Filter {
            pool: Some("cpu".into()),
            ..Filter::default()
        };
        assert_eq!(ids(&select(records(), &filter, None)), [20, 10, 21]);
    }

    #[test]
    fn live_drops_terminal_phases_and_phases_pick() {
        let live = Filter {
            live: true,
            ..Filter::default()
        };
        assert_eq!(ids(&select(records(), &live, None)), [20, 10]);
        let phases = Filter {
            phases: vec![JobPhase::Done, JobPhase::Failed],
            ..Filter::default()
        };
        assert_eq!(ids(&select(records(), &phases, None)), [11, 21]);
    }

    #[test]
    fn runs_and_since_narrow_a_trace() {
        let filter = Filter {
            runs: vec![1],
            since_unix_ms: Some(150),
            ..Filter::default()
        };
        assert_eq!(ids(&select(records(), &filter, None)), [11]);
    }
}
