//! Every NATS subject slurm-actions uses, defined once.
//!
//! Subjects carry no repository names: `owner/name` may contain `.`, which
//! NATS treats as a token separator. Repository, job id and labels travel in
//! headers instead (see [`crate::headers`]).

/// `QueuedJob` from the poller: a job waiting for a runner.
pub const JOBS_QUEUED: &str = "gha.jobs.queued";

/// `JobStatusChange` from the poller: a job left `queued`.
pub const JOBS_STATUS: &str = "gha.jobs.status";

/// Everything on the GHA_JOBS stream.
pub const JOBS_ALL: &str = "gha.jobs.>";

/// `JitConfigRequest` -> `JitConfigReply`, request/reply to the scheduler.
pub const SCHEDULER_JITCONFIG: &str = "gha.scheduler.jitconfig";

/// Queue group the scheduler replicas answer JIT-config requests in.
pub const SCHEDULER_QUEUE_GROUP: &str = "gha-scheduler";

/// Prefix of `RunnerEvent` subjects: `gha.runner.<slurm_job_id>.events`.
pub const RUNNER_EVENTS_ALL: &str = "gha.runner.*.events";

/// `RunnerEvent`s of one launcher.
pub fn runner_events(slurm_job_id: u64) -> String {
    format!("gha.runner.{slurm_job_id}.events")
}

/// `UnpackRequest` to the unpacker.
pub const UNPACK_REQUESTS: &str = "gha.unpack.requests";

/// Prefix of `UnpackResult` subjects: `gha.unpack.results.<request_id>`.
pub const UNPACK_RESULTS_ALL: &str = "gha.unpack.results.*";

/// Where the `UnpackResult` of one request is published.
pub fn unpack_result(request_id: &str) -> String {
    format!("gha.unpack.results.{request_id}")
}

/// Dead letters: messages a consumer gave up on, by origin stream, e.g.
/// `gha.dead.GHA_JOBS`.
pub const DEAD_LETTERS_ALL: &str = "gha.dead.>";

/// The dead-letter subject for messages from `stream`.
pub fn dead_letter(stream: &str) -> String {
    format!("gha.dead.{stream}")
}

/// True when `token` can be used as one subject token (no wildcards,
/// separators or white space), as a request id must be.
pub fn is_valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameterised_subjects_fill_their_token() {
        assert_eq!(runner_events(4242), "gha.runner.4242.events");
        assert_eq!(unpack_result("req-1"), "gha.unpack.results.req-1");
        assert_eq!(dead_letter("GHA_JOBS"), "gha.dead.GHA_JOBS");
    }

    #[test]
    fn tokens_reject_what_would_change_a_subject() {
        assert!(is_valid_token("build_42-a"));
        for bad in ["", "a.b", "a b", "*", ">", "a\nb", &"x".repeat(129)] {
            assert!(!is_valid_token(bad), "{bad:?} accepted");
        }
    }
}
