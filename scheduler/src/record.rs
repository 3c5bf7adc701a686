//! The job record's rules: how a [`JobState`] in the `gha_jobs` bucket may
//! change. Pure functions from a record and an event to the next record;
//! the service writes the result with compare-and-set.

use gha_proto::v1::{JobPhase, JobState, Placement, QueuedJob};

/// Deterministic Slurm `--job-name` for a job's submission attempt: the
/// same inputs give the same name, so a submission that succeeded behind
/// an error is found again by name.
pub fn slurm_job_name(prefix: &str, job_id: i64, attempt: u32) -> String {
    format!("{prefix}-{job_id}-{attempt}")
}

/// The job id and attempt a name of ours encodes, if it is one.
pub fn parse_slurm_job_name(prefix: &str, name: &str) -> Option<(i64, u32)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (job, attempt) = rest.split_once('-')?;
    Some((job.parse().ok()?, attempt.parse().ok()?))
}

/// `--comment` of a job's Slurm jobs: repository, job and run attempt, so
/// `squeue -o %k` tells an operator what a Slurm job is for.
pub fn correlation_id(job: &QueuedJob) -> String {
    format!(
        "gha:{}:job={}:run={}:run_attempt={}",
        job.repository, job.job_id, job.run_id, job.run_attempt
    )
}

/// A new record for demand seen for the first time.
pub fn queued(job: QueuedJob, now_ms: i64) -> JobState {
    JobState {
        job: Some(job),
        phase: JobPhase::Queued as i32,
        attempt: 0,
        phase_since_unix_ms: now_ms,
        updated_at_unix_ms: now_ms,
        ..JobState::default()
    }
}

/// Whether the record is finished with for good.
pub fn is_terminal(state: &JobState) -> bool {
    matches!(
        state.phase(),
        JobPhase::Done | JobPhase::Withdrawn | JobPhase::Unplaceable | JobPhase::Failed
    )
}

fn moved(mut state: JobState, phase: JobPhase, reason: &str, now_ms: i64) -> JobState {
    if state.phase() != phase {
        state.phase_since_unix_ms = now_ms;
    }
    state.phase = phase as i32;
    state.reason = reason.to_owned();
    state.updated_at_unix_ms = now_ms;
    state
}

/// No pool takes the job: terminal, with the reason.
pub fn unplaceable(state: JobState, reason: &str, now_ms: i64) -> JobState {
    moved(state, JobPhase::Unplaceable, reason, now_ms)
}

/// About to run `sbatch` for the next attempt: the name and the claim's
/// hash are durable *before* the Slurm job can exist.
pub fn submitting(
    mut state: JobState,
    placement: Placement,
    name_prefix: &str,
    claim_sha256: [u8; 32],
    now_ms: i64,
) -> JobState {
    let job_id = state.job.as_ref().map_or(0, |job| job.job_id);
    state.attempt += 1;
    state.placement = Some(placement);
    state.slurm_job_id = 0;
    state.slurm_job_name = slurm_job_name(name_prefix, job_id, state.attempt);
    state.correlation_id = state.job.as_ref().map(correlation_id).unwrap_or_default();
    state.claim_sha256 = claim_sha256.to_vec();
    state.runner_name.clear();
    state.runner_id = 0;
    moved(state, JobPhase::Queued, "submitting", now_ms)
}

/// A fresh claim for an attempt whose `sbatch` never happened (found by
/// name: no such Slurm job).
pub fn reclaimed(mut state: JobState, claim_sha256: [u8; 32], now_ms: i64) -> JobState {
    state.claim_sha256 = claim_sha256.to_vec();
    state.updated_at_unix_ms = now_ms;
    state
}

/// Whether the record is between its durable `submitting` write and the
/// write of the Slurm job id: after a crash there, look the job up by name.
pub fn is_submitting(state: &JobState) -> bool {
    state.phase() == JobPhase::Queued && !state.slurm_job_name.is_empty()
}

/// `sbatch` accepted the job (or it was found by name).
pub fn submitted(mut state: JobState, slurm_job_id: u64, now_ms: i64) -> JobState {
    state.slurm_job_id = slurm_job_id;
    moved(state, JobPhase::Submitted, "", now_ms)
}

/// The launcher's claim was accepted: the Slurm job runs.
pub fn launching(mut state: JobState, slurm_job_id: u64, now_ms: i64) -> JobState {
    state.slurm_job_id = slurm_job_id;
    moved(state, JobPhase::Launching, "", now_ms)
}

/// The runner's registration was minted.
pub fn minted(mut state: JobState, runner_name: &str, runner_id: i64, now_ms: i64) -> JobState {
    state.runner_name = runner_name.to_owned();
    state.runner_id = runner_id;
    state.updated_at_unix_ms = now_ms;
    state
}

/// The runner took a GitHub job.
pub fn running(state: JobState, now_ms: i64) -> JobState {
    moved(state, JobPhase::Running, "", now_ms)
}

/// The runner (or its Slurm job) ended after taking a job.
pub fn done(state: JobState, reason: &str, now_ms: i64) -> JobState {
    moved(state, JobPhase::Done, reason, now_ms)
}

/// Demand went away before a runner was needed.
pub fn withdrawn(state: JobState, reason: &str, now_ms: i64) -> JobState {
    moved(state, JobPhase::Withdrawn, reason, now_ms)
}

/// The Slurm job died before its runner took a job: queue again for the
/// next attempt, or fail when `max_attempts` are spent.
pub fn died_early(state: JobState, reason: &str, max_attempts: u32, now_ms: i64) -> JobState {
    if state.attempt >= max_attempts {
        let reason = format!("{reason}; {max_attempts} attempts spent");
        return moved(state, JobPhase::Failed, &reason, now_ms);
    }
    let mut state = moved(state, JobPhase::Queued, reason, now_ms);
    state.slurm_job_id = 0;
    state.slurm_job_name.clear();
    state.claim_sha256.clear();
    state
}

/// The record's demand: still waiting for a runner on GitHub's side.
pub fn job_id(state: &JobState) -> i64 {
    state.job.as_ref().map_or(0, |job| job.job_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(job_id: i64) -> QueuedJob {
        QueuedJob {
            job_id,
            run_id: 7,
            run_attempt: 1,
            repository: "org/repo".into(),
            owner: "org".into(),
            labels: vec!["slurm".into()],
            ..QueuedJob::default()
        }
    }

    #[test]
    fn names_are_deterministic_and_parse_back() {
        let name = slurm_job_name("gha", 123, 2);
        assert_eq!(name, "gha-123-2");
        assert_eq!(parse_slurm_job_name("gha", &name), Some((123, 2)));
        assert_eq!(parse_slurm_job_name("gha", "other-123-2"), None);
        assert_eq!(parse_slurm_job_name("gha", "gha-x-2"), None);
    }

    #[test]
    fn a_submission_attempt_is_durable_before_sbatch() {
        let record = submitting(queued(job(5), 1), Placement::default(), "gha", [1; 32], 2);
        assert!(is_submitting(&record));
        assert_eq!(record.attempt, 1);
        assert_eq!(record.slurm_job_name, "gha-5-1");
        assert_eq!(record.claim_sha256, vec![1; 32]);
        let record = submitted(record, 42, 3);
        assert!(!is_submitting(&record));
        assert_eq!(record.phase(), JobPhase::Submitted);
        assert_eq!(record.slurm_job_id, 42);
    }

    #[test]
    fn an_early_death_requeues_until_attempts_are_spent() {
        let record = submitted(
            submitting(queued(job(5), 1), Placement::default(), "gha", [1; 32], 2),
            42,
            3,
        );
        let again = died_early(record, "NODE_FAIL", 2, 4);
        assert_eq!(again.phase(), JobPhase::Queued);
        assert!(!is_submitting(&again));
        assert_eq!(again.reason, "NODE_FAIL");
        let second = submitting(again, Placement::default(), "gha", [2; 32], 5);
        assert_eq!(second.slurm_job_name, "gha-5-2");
        let failed = died_early(submitted(second, 43, 6), "TIMEOUT", 2, 7);
        assert_eq!(failed.phase(), JobPhase::Failed);
        assert!(
            failed.reason.contains("2 attempts spent"),
            "{}",
            failed.reason
        );
        assert!(is_terminal(&failed));
    }
}
