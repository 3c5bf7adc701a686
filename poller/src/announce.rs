//! What the poll tells the scheduler beyond what a pass finds new, read
//! against the scheduler's records (KV `gha_jobs`, read only):
//!
//! - **Announcing again.** JetStream drops a repeated `Nats-Msg-Id` for
//!   24 h, so a `QueuedJob` the scheduler lost (dead-lettered during a KV
//!   outage) would never come back. A job published earlier, still queued
//!   on GitHub after a grace, with no record, is published again under
//!   `<job>-<attempt>-r<generation>`; the generation counts graces since
//!   the job was queued, so each grace gives at most one new id and a
//!   restarted poller picks the same one. The scheduler's `create` makes a
//!   repeat harmless.
//! - **Following after a restart.** Jobs that left the queue while the
//!   poller was down are in no list it reads: the records the scheduler
//!   holds that are not terminal and have no GitHub status say which jobs
//!   (and runs) to look at.

use std::time::Duration;

use gha_proto::client::Published;
use gha_proto::v1::{JobPhase, JobState, JobStatus, QueuedJob};
use gha_proto::{Contract, ContractError, Envelope, TypedKv, headers};
use prost::Message;

/// The generation to announce `job` again under at `now_ms`, if it was
/// queued longer than `grace` ago.
pub fn reannounce_generation(created_at_ms: i64, now_ms: i64, grace: Duration) -> Option<u64> {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX).max(1);
    if created_at_ms <= 0 {
        return None; // unknown age: the scheduler's record is the only guide
    }
    let generation = now_ms.saturating_sub(created_at_ms) / grace_ms;
    (generation >= 1).then_some(generation as u64)
}

/// `Nats-Msg-Id` of the `generation`th announcement of `job`.
pub fn reannounce_id(job: &QueuedJob, generation: u64) -> String {
    format!("{}-{}-r{generation}", job.job_id, job.run_attempt)
}

/// Publishes `job` again under [`reannounce_id`].
pub async fn publish_again(
    contract: &Contract,
    job: &QueuedJob,
    generation: u64,
) -> Result<Published, ContractError> {
    let mut map = job.headers();
    map.insert(headers::NATS_MSG_ID, reannounce_id(job, generation));
    let subject = job.subject();
    let ack = contract
        .jetstream()
        .publish_with_headers(subject.clone(), map, job.encode_to_vec().into())
        .await
        .map_err(|err| ContractError::Publish {
            subject: subject.clone(),
            source: err.into(),
        })?
        .await
        .map_err(|err| ContractError::Publish {
            subject,
            source: err.into(),
        })?;
    Ok(Published {
        sequence: ack.sequence,
        duplicate: ack.duplicate,
    })
}

/// True when `job` has no record in `records`.
pub async fn unrecorded(
    records: &TypedKv<JobState>,
    job: &QueuedJob,
) -> Result<bool, ContractError> {
    Ok(records.get(&job.job_id.to_string()).await?.is_none())
}

/// A record whose GitHub job may still need its status reported: not
/// terminal, and no status from GitHub yet.
pub fn awaits_status(state: &JobState) -> bool {
    let open = matches!(
        state.phase(),
        JobPhase::Queued | JobPhase::Submitted | JobPhase::Launching | JobPhase::Running
    );
    open && state.github_status() == JobStatus::Unspecified
}

/// `(job id, repository, run id)` of every record [`awaits_status`] for
/// installation `installation` (0 = a token's jobs).
pub async fn open_records(
    records: &TypedKv<JobState>,
    installation: i64,
) -> Result<Vec<(i64, String, i64)>, ContractError> {
    let mut open = Vec::new();
    for key in records.keys().await? {
        let Some(entry) = records.get(&key).await? else {
            continue;
        };
        let state = entry.value;
        let Some(job) = state.job.as_ref() else {
            continue;
        };
        if awaits_status(&state) && job.installation_id == installation {
            open.push((job.job_id, job.repository.clone(), job.run_id));
        }
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(300);

    #[test]
    fn a_job_is_announced_again_once_per_grace_after_the_first() {
        let queued_at = 1_700_000_000_000;
        assert_eq!(
            reannounce_generation(queued_at, queued_at + 299_999, GRACE),
            None
        );
        assert_eq!(
            reannounce_generation(queued_at, queued_at + 300_000, GRACE),
            Some(1)
        );
        assert_eq!(
            reannounce_generation(queued_at, queued_at + 599_999, GRACE),
            Some(1)
        );
        assert_eq!(
            reannounce_generation(queued_at, queued_at + 600_000, GRACE),
            Some(2)
        );
        assert_eq!(
            reannounce_generation(0, queued_at, GRACE),
            None,
            "age unknown"
        );
    }

    #[test]
    fn each_generation_has_its_own_message_id_apart_from_the_first() {
        let job = QueuedJob {
            job_id: 5,
            run_attempt: 2,
            ..QueuedJob::default()
        };
        assert_eq!(job.msg_id().as_deref(), Some("5-2"));
        assert_eq!(reannounce_id(&job, 1), "5-2-r1");
        assert_ne!(reannounce_id(&job, 1), reannounce_id(&job, 2));
    }

    #[test]
    fn only_open_records_without_a_github_status_are_followed() {
        let record = |phase: JobPhase, status: JobStatus| JobState {
            phase: phase as i32,
            github_status: status as i32,
            ..JobState::default()
        };
        assert!(awaits_status(&record(
            JobPhase::Submitted,
            JobStatus::Unspecified
        )));
        assert!(awaits_status(&record(
            JobPhase::Running,
            JobStatus::Unspecified
        )));
        assert!(!awaits_status(&record(
            JobPhase::Submitted,
            JobStatus::Cancelled
        )));
        assert!(!awaits_status(&record(
            JobPhase::Done,
            JobStatus::Unspecified
        )));
        assert!(!awaits_status(&record(
            JobPhase::Withdrawn,
            JobStatus::Unspecified
        )));
    }
}
