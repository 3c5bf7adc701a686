//! GitHub's `workflow_job` and workflow-run JSON, read tolerantly: every
//! field the poller does not strictly need is optional, unknown fields are
//! ignored, and statuses GitHub may add later are kept as text.
//!
//! octocrab's own models are not used here: they require fields GitHub sends
//! as `null` (a run's `head_branch`, for one).

use serde::Deserialize;

/// A job as in `GET .../actions/jobs/{id}`, `GET .../runs/{id}/jobs` and the
/// `workflow_job` webhook.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WorkflowJob {
    pub id: i64,
    pub run_id: i64,
    /// Absent in some old payloads: treated as the first attempt.
    #[serde(default = "first_attempt")]
    pub run_attempt: u32,
    pub status: String,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub workflow_name: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub head_sha: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub runner_id: Option<i64>,
    #[serde(default)]
    pub runner_name: Option<String>,
}

fn first_attempt() -> u32 {
    1
}

/// The account that owns a repository.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Owner {
    pub login: String,
}

/// A repository, as far as the poller needs it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Repository {
    pub id: i64,
    pub full_name: String,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub fork: bool,
}

impl Repository {
    /// A repository known only by `owner/name` (id 0), for jobs whose
    /// payload did not carry the repository object.
    pub fn named(full_name: &str) -> Self {
        Self {
            id: 0,
            full_name: full_name.to_string(),
            owner: None,
            fork: false,
        }
    }

    /// The owner's login, from `owner` or else from `full_name`.
    pub fn owner_login(&self) -> &str {
        match &self.owner {
            Some(owner) => &owner.login,
            None => self.full_name.split('/').next().unwrap_or_default(),
        }
    }
}

/// A workflow run, as far as the poller needs it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WorkflowRun {
    pub id: i64,
    pub status: Option<String>,
    #[serde(default = "first_attempt")]
    pub run_attempt: u32,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub repository: Option<Repository>,
    /// Where the code comes from: another repository for a fork's pull
    /// request.
    #[serde(default)]
    pub head_repository: Option<Repository>,
}

impl WorkflowRun {
    /// True when the run may build code from a fork: its head repository
    /// is another repository than the one it runs in, or is unknown (GitHub
    /// sends `head_repository: null` once a fork is deleted). Unknown is
    /// untrusted: the check fails closed.
    pub fn is_from_fork(&self) -> bool {
        match (&self.repository, &self.head_repository) {
            (Some(base), Some(head)) => head.id != base.id || head.fork && !base.fork,
            _ => true,
        }
    }
}

/// The `installation` of a webhook payload.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InstallationRef {
    pub id: i64,
}

/// A `workflow_job` webhook payload.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WorkflowJobEvent {
    pub action: String,
    pub workflow_job: WorkflowJob,
    pub repository: Repository,
    #[serde(default)]
    pub installation: Option<InstallationRef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_with_nulls_and_unknown_fields_parses() {
        let payload = r#"{
            "action": "queued",
            "workflow_job": {
                "id": 33000000001, "run_id": 12000000001, "run_attempt": 2,
                "status": "queued", "conclusion": null, "name": "build",
                "workflow_name": null, "head_branch": null, "labels": ["self-hosted", "slurm"],
                "runner_id": null, "runner_name": null, "some_future_field": {"x": 1}
            },
            "repository": {"id": 7, "full_name": "acme/widgets", "owner": {"login": "acme"}},
            "installation": {"id": 99, "node_id": "x"}
        }"#;
        let event: WorkflowJobEvent = serde_json::from_str(payload).unwrap();
        assert_eq!(event.workflow_job.id, 33_000_000_001);
        assert_eq!(event.workflow_job.run_attempt, 2);
        assert_eq!(event.workflow_job.head_branch, None);
        assert_eq!(event.repository.owner_login(), "acme");
        assert_eq!(event.installation.unwrap().id, 99);
    }

    #[test]
    fn statuses_github_may_add_later_are_kept() {
        let job: WorkflowJob =
            serde_json::from_str(r#"{"id": 1, "run_id": 2, "status": "pending_review"}"#).unwrap();
        assert_eq!(job.status, "pending_review");
        assert_eq!(job.run_attempt, 1);
    }

    #[test]
    fn a_run_from_a_fork_is_recognised() {
        let run = |head_id: i64, head_fork: bool| WorkflowRun {
            id: 1,
            status: Some("queued".into()),
            run_attempt: 1,
            event: Some("pull_request".into()),
            repository: Some(Repository {
                id: 7,
                full_name: "acme/widgets".into(),
                owner: None,
                fork: false,
            }),
            head_repository: Some(Repository {
                id: head_id,
                full_name: "someone/widgets".into(),
                owner: None,
                fork: head_fork,
            }),
        };
        assert!(run(8, true).is_from_fork());
        assert!(!run(7, false).is_from_fork());
    }

    #[test]
    fn a_run_whose_head_repository_is_null_counts_as_a_fork() {
        let run: WorkflowRun = serde_json::from_str(
            r#"{"id": 1, "status": "queued", "event": "pull_request",
                "repository": {"id": 7, "full_name": "acme/widgets"},
                "head_repository": null}"#,
        )
        .unwrap();
        assert!(run.is_from_fork(), "a deleted fork fails closed");
    }
}
