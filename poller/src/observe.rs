//! What a job's GitHub status means for the scheduler: a `queued` job is
//! demand (`QueuedJob`); `in_progress` and `completed` take demand away
//! (`JobStatusChange`); `waiting`, `requested`, `pending` and statuses GitHub
//! may add later are not demand yet and are ignored.

use gha_proto::v1::{JobSource, JobStatus, JobStatusChange, QueuedJob};

use gha_github::types::{Repository, WorkflowJob};

/// What one sighting of a job amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Queued(QueuedJob),
    Changed(JobStatusChange),
    /// Not demand and not a change worth publishing; says why.
    Ignored(String),
}

/// Milliseconds since the epoch of a GitHub timestamp; 0 if absent or
/// unreadable.
pub fn unix_ms(timestamp: Option<&str>) -> i64 {
    timestamp
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map(|at| at.timestamp_millis())
        .unwrap_or(0)
}

/// Reads a job seen in `repository` (through `installation`, 0 for a
/// token) at `observed_at_unix_ms`.
pub fn observe(
    job: &WorkflowJob,
    repository: &Repository,
    installation: i64,
    source: JobSource,
    observed_at_unix_ms: i64,
) -> Observation {
    let status = match job.status.as_str() {
        "queued" => {
            return Observation::Queued(QueuedJob {
                job_id: job.id,
                run_id: job.run_id,
                run_attempt: job.run_attempt,
                repository_id: repository.id,
                repository: repository.full_name.clone(),
                owner: repository.owner_login().to_string(),
                labels: job.labels.clone(),
                workflow_name: job.workflow_name.clone().unwrap_or_default(),
                job_name: job.name.clone().unwrap_or_default(),
                head_branch: job.head_branch.clone().unwrap_or_default(),
                head_sha: job.head_sha.clone().unwrap_or_default(),
                html_url: job.html_url.clone().unwrap_or_default(),
                created_at_unix_ms: unix_ms(job.created_at.as_deref()),
                source: source as i32,
                observed_at_unix_ms,
                installation_id: installation,
            });
        }
        "in_progress" => JobStatus::InProgress,
        "completed" if job.conclusion.as_deref() == Some("cancelled") => JobStatus::Cancelled,
        "completed" => JobStatus::Completed,
        other => return Observation::Ignored(format!("status {other:?} is not demand yet")),
    };
    Observation::Changed(JobStatusChange {
        job_id: job.id,
        run_id: job.run_id,
        run_attempt: job.run_attempt,
        repository_id: repository.id,
        repository: repository.full_name.clone(),
        status: status as i32,
        conclusion: job.conclusion.clone().unwrap_or_default(),
        runner_name: job.runner_name.clone().unwrap_or_default(),
        runner_id: job.runner_id.unwrap_or_default(),
        source: source as i32,
        observed_at_unix_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(status: &str, conclusion: Option<&str>) -> WorkflowJob {
        WorkflowJob {
            id: 33_000_000_001,
            run_id: 12_000_000_001,
            run_attempt: 2,
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
            name: Some("build".into()),
            workflow_name: None,
            head_branch: None,
            head_sha: Some("abc".into()),
            html_url: None,
            created_at: Some("2026-11-28T09:00:00Z".into()),
            labels: vec!["self-hosted".into(), "slurm".into()],
            runner_id: Some(7),
            runner_name: Some("gha-node1-42".into()),
        }
    }

    fn repo() -> Repository {
        Repository {
            id: 700,
            full_name: "acme/widgets".into(),
            owner: None,
            fork: false,
        }
    }

    #[test]
    fn a_queued_job_is_demand_with_every_field_carried() {
        let Observation::Queued(queued) =
            observe(&job("queued", None), &repo(), 5, JobSource::Poll, 42)
        else {
            panic!("not demand")
        };
        assert_eq!((queued.job_id, queued.run_attempt), (33_000_000_001, 2));
        assert_eq!(queued.owner, "acme");
        assert_eq!(queued.head_branch, "", "null head_branch is empty");
        // `date -u -d 2026-11-28T09:00:00Z +%s` = 1795856400
        assert_eq!(queued.created_at_unix_ms, 1_795_856_400_000);
        assert_eq!(queued.installation_id, 5);
        assert_eq!(queued.observed_at_unix_ms, 42);
        assert_eq!(queued.source, JobSource::Poll as i32);
    }

    #[test]
    fn progress_completion_and_cancellation_are_status_changes() {
        let status = |status, conclusion| match observe(
            &job(status, conclusion),
            &repo(),
            0,
            JobSource::Webhook,
            0,
        ) {
            Observation::Changed(change) => (change.status, change.runner_name),
            other => panic!("{other:?}"),
        };
        assert_eq!(status("in_progress", None).0, JobStatus::InProgress as i32);
        assert_eq!(
            status("completed", Some("success")).0,
            JobStatus::Completed as i32
        );
        assert_eq!(
            status("completed", Some("cancelled")).0,
            JobStatus::Cancelled as i32
        );
        assert_eq!(status("in_progress", None).1, "gha-node1-42");
    }

    #[test]
    fn waiting_requested_and_unknown_statuses_are_ignored() {
        for status in ["waiting", "requested", "pending", "pending_review"] {
            assert!(
                matches!(
                    observe(&job(status, None), &repo(), 0, JobSource::Poll, 0),
                    Observation::Ignored(_)
                ),
                "{status}"
            );
        }
    }
}
