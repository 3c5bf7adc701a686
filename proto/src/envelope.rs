//! How each message travels: its subject, dedup id and readable headers.

use async_nats::HeaderMap;

use crate::headers::{self, insert};
use crate::subjects;
use crate::v1::{
    JitConfigReply, JitConfigRequest, JobSource, JobStatus, JobStatusChange, QueuedJob,
    RunnerEvent, RunnerEventKind, UnpackRequest, UnpackResult,
};

/// A protobuf message with its place on the wire.
pub trait Envelope: prost::Message + Default + Sized {
    /// The message type, as in the `.proto` file and the `Gha-Type` header.
    const TYPE: &'static str;

    /// The subject this message is published on.
    fn subject(&self) -> String;

    /// `Nats-Msg-Id` for JetStream deduplication, where the message has one.
    fn msg_id(&self) -> Option<String> {
        None
    }

    /// Adds the message's key fields as readable headers.
    fn describe(&self, _headers: &mut HeaderMap) {}

    /// All headers the message is published with.
    fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        insert(&mut map, headers::TYPE, Self::TYPE);
        if let Some(id) = self.msg_id() {
            insert(&mut map, headers::NATS_MSG_ID, id);
        }
        self.describe(&mut map);
        map
    }
}

fn source_name(source: i32) -> &'static str {
    match JobSource::try_from(source) {
        Ok(JobSource::Webhook) => "webhook",
        Ok(JobSource::Poll) => "poll",
        _ => "unspecified",
    }
}

/// `in_progress`, `completed` or `cancelled`: GitHub's own words.
pub fn status_name(status: i32) -> &'static str {
    match JobStatus::try_from(status) {
        Ok(JobStatus::InProgress) => "in_progress",
        Ok(JobStatus::Completed) => "completed",
        Ok(JobStatus::Cancelled) => "cancelled",
        _ => "unspecified",
    }
}

impl Envelope for QueuedJob {
    const TYPE: &'static str = "QueuedJob";

    fn subject(&self) -> String {
        subjects::JOBS_QUEUED.into()
    }

    /// Job id and run attempt: a poll and a webhook, or two polls, that see
    /// the same queued job publish it once.
    fn msg_id(&self) -> Option<String> {
        Some(format!("{}-{}", self.job_id, self.run_attempt))
    }

    fn describe(&self, map: &mut HeaderMap) {
        insert(map, headers::JOB_ID, self.job_id.to_string());
        insert(map, headers::RUN_ID, self.run_id.to_string());
        insert(map, headers::RUN_ATTEMPT, self.run_attempt.to_string());
        insert(map, headers::REPOSITORY, &self.repository);
        insert(map, headers::LABELS, self.labels.join(","));
        insert(map, headers::SOURCE, source_name(self.source));
    }
}

impl Envelope for JobStatusChange {
    const TYPE: &'static str = "JobStatusChange";

    fn subject(&self) -> String {
        subjects::JOBS_STATUS.into()
    }

    fn msg_id(&self) -> Option<String> {
        Some(format!(
            "{}-{}-{}",
            self.job_id,
            self.run_attempt,
            status_name(self.status)
        ))
    }

    fn describe(&self, map: &mut HeaderMap) {
        insert(map, headers::JOB_ID, self.job_id.to_string());
        insert(map, headers::RUN_ID, self.run_id.to_string());
        insert(map, headers::RUN_ATTEMPT, self.run_attempt.to_string());
        insert(map, headers::REPOSITORY, &self.repository);
        insert(map, headers::STATUS, status_name(self.status));
        insert(map, headers::SOURCE, source_name(self.source));
        if !self.runner_name.is_empty() {
            insert(map, headers::RUNNER, &self.runner_name);
        }
    }
}

/// `job_started`, `runner_exited`, ...: the enum name in snake case.
pub fn runner_event_name(kind: i32) -> String {
    RunnerEventKind::try_from(kind)
        .map(|kind| {
            kind.as_str_name()
                .trim_start_matches("RUNNER_EVENT_KIND_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown_{kind}"))
}

impl Envelope for RunnerEvent {
    const TYPE: &'static str = "RunnerEvent";

    fn subject(&self) -> String {
        subjects::runner_events(self.slurm_job_id)
    }

    fn msg_id(&self) -> Option<String> {
        Some(format!("{}-{}", self.slurm_job_id, self.sequence))
    }

    fn describe(&self, map: &mut HeaderMap) {
        insert(map, headers::SLURM_JOB_ID, self.slurm_job_id.to_string());
        insert(map, headers::JOB_ID, self.job_id.to_string());
        insert(map, headers::EVENT, runner_event_name(self.kind));
        if !self.runner_name.is_empty() {
            insert(map, headers::RUNNER, &self.runner_name);
        }
    }
}

impl Envelope for JitConfigRequest {
    const TYPE: &'static str = "JitConfigRequest";

    fn subject(&self) -> String {
        subjects::SCHEDULER_JITCONFIG.into()
    }

    /// The claim is a credential: only the ids go into headers.
    fn describe(&self, map: &mut HeaderMap) {
        insert(map, headers::SLURM_JOB_ID, self.slurm_job_id.to_string());
        insert(map, headers::JOB_ID, self.job_id.to_string());
    }
}

impl Envelope for JitConfigReply {
    const TYPE: &'static str = "JitConfigReply";

    /// Replies go to the requester's inbox; this is never used to publish.
    fn subject(&self) -> String {
        subjects::SCHEDULER_JITCONFIG.into()
    }

    /// The JIT config is a credential: only the runner name goes into headers.
    fn describe(&self, map: &mut HeaderMap) {
        if !self.runner_name.is_empty() {
            insert(map, headers::RUNNER, &self.runner_name);
        }
    }
}

impl Envelope for UnpackRequest {
    const TYPE: &'static str = "UnpackRequest";

    fn subject(&self) -> String {
        subjects::UNPACK_REQUESTS.into()
    }

    fn msg_id(&self) -> Option<String> {
        Some(self.request_id.clone())
    }

    fn describe(&self, map: &mut HeaderMap) {
        insert(map, headers::REQUEST_ID, &self.request_id);
        insert(map, headers::IMAGE_SOURCE, &self.source);
    }
}

impl Envelope for UnpackResult {
    const TYPE: &'static str = "UnpackResult";

    fn subject(&self) -> String {
        subjects::unpack_result(&self.request_id)
    }

    fn describe(&self, map: &mut HeaderMap) {
        insert(map, headers::REQUEST_ID, &self.request_id);
        insert(map, headers::IMAGE_SOURCE, &self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> QueuedJob {
        QueuedJob {
            job_id: 991,
            run_id: 77,
            run_attempt: 2,
            repository: "acme/widgets".into(),
            labels: vec!["self-hosted".into(), "slurm".into()],
            source: JobSource::Webhook as i32,
            ..Default::default()
        }
    }

    #[test]
    fn queued_job_dedups_on_job_and_attempt() {
        let job = queued();
        assert_eq!(job.msg_id().as_deref(), Some("991-2"));
        let mut next_attempt = job.clone();
        next_attempt.run_attempt = 3;
        assert_ne!(job.msg_id(), next_attempt.msg_id());
    }

    #[test]
    fn queued_job_headers_are_readable() {
        let map = queued().headers();
        let get = |name| headers::get(Some(&map), name);
        assert_eq!(get(headers::TYPE), Some("QueuedJob"));
        assert_eq!(get(headers::NATS_MSG_ID), Some("991-2"));
        assert_eq!(get(headers::JOB_ID), Some("991"));
        assert_eq!(get(headers::REPOSITORY), Some("acme/widgets"));
        assert_eq!(get(headers::LABELS), Some("self-hosted,slurm"));
        assert_eq!(get(headers::SOURCE), Some("webhook"));
    }

    #[test]
    fn status_changes_of_one_attempt_dedup_per_status() {
        let mut change = JobStatusChange {
            job_id: 5,
            run_attempt: 1,
            status: JobStatus::InProgress as i32,
            ..Default::default()
        };
        let in_progress = change.msg_id();
        change.status = JobStatus::Completed as i32;
        assert_eq!(in_progress.as_deref(), Some("5-1-in_progress"));
        assert_eq!(change.msg_id().as_deref(), Some("5-1-completed"));
    }

    #[test]
    fn credentials_never_reach_headers() {
        let request = JitConfigRequest {
            slurm_job_id: 12,
            job_id: 34,
            claim: "s3cret-claim".into(),
            hostname: "node1".into(),
        };
        let reply = JitConfigReply {
            encoded_jit_config: "s3cret-jit".into(),
            runner_name: "gha-12".into(),
            ..Default::default()
        };
        for map in [request.headers(), reply.headers()] {
            for (_, values) in map.iter() {
                for value in values {
                    assert!(!value.as_str().contains("s3cret"), "{value:?}");
                }
            }
        }
    }

    #[test]
    fn runner_events_name_their_kind_in_snake_case() {
        assert_eq!(
            runner_event_name(RunnerEventKind::JobStarted as i32),
            "job_started"
        );
        assert_eq!(runner_event_name(99), "unknown_99");
        let event = RunnerEvent {
            slurm_job_id: 8,
            sequence: 3,
            ..Default::default()
        };
        assert_eq!(event.subject(), "gha.runner.8.events");
        assert_eq!(event.msg_id().as_deref(), Some("8-3"));
    }
}
