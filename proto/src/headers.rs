//! NATS headers: the key fields of every message, in plain text.
//!
//! A person running `nats stream view GHA_JOBS` sees which job, repository
//! and labels a message is about without decoding protobuf. Credentials (the
//! claim, the JIT config) never go into headers.

use async_nats::HeaderMap;

/// JetStream's deduplication id.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// The protobuf message type of the payload, e.g. `QueuedJob`.
pub const TYPE: &str = "Gha-Type";
/// GitHub `workflow_job.id`.
pub const JOB_ID: &str = "Gha-Job-Id";
/// GitHub workflow run id.
pub const RUN_ID: &str = "Gha-Run-Id";
/// GitHub run attempt.
pub const RUN_ATTEMPT: &str = "Gha-Run-Attempt";
/// `owner/name`.
pub const REPOSITORY: &str = "Gha-Repository";
/// The job's `runs-on` labels, comma-separated.
pub const LABELS: &str = "Gha-Labels";
/// `in_progress`, `completed`, `cancelled`.
pub const STATUS: &str = "Gha-Status";
/// `webhook` or `poll`.
pub const SOURCE: &str = "Gha-Source";
/// Slurm job id of a launcher.
pub const SLURM_JOB_ID: &str = "Gha-Slurm-Job-Id";
/// Runner event kind, e.g. `job_started`.
pub const EVENT: &str = "Gha-Event";
/// Runner name.
pub const RUNNER: &str = "Gha-Runner";
/// Unpack request id.
pub const REQUEST_ID: &str = "Gha-Request-Id";
/// Image source of an unpack request.
pub const IMAGE_SOURCE: &str = "Gha-Image-Source";
/// Why a message was dead-lettered.
pub const DEAD_REASON: &str = "Gha-Dead-Reason";
/// Subject a dead-lettered message was first published on.
pub const ORIGINAL_SUBJECT: &str = "Gha-Original-Subject";
/// Stream sequence of a dead-lettered message in its origin stream.
pub const ORIGINAL_SEQUENCE: &str = "Gha-Original-Sequence";

/// Inserts `value` under `name`, with line breaks (which would end the header
/// block) replaced by spaces and the length bounded.
pub fn insert(headers: &mut HeaderMap, name: &'static str, value: impl AsRef<str>) {
    const MAX: usize = 1024;
    let mut text: String = value
        .as_ref()
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    headers.insert(name, text);
}

/// The value of header `name`, if present.
pub fn get<'a>(headers: Option<&'a HeaderMap>, name: &str) -> Option<&'a str> {
    headers?.get(name).map(|value| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_cannot_end_the_header_block() {
        let mut headers = HeaderMap::new();
        insert(&mut headers, REPOSITORY, "evil\r\nNats-Msg-Id: 1");
        assert_eq!(
            get(Some(&headers), REPOSITORY),
            Some("evil  Nats-Msg-Id: 1")
        );
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let mut headers = HeaderMap::new();
        insert(&mut headers, LABELS, "é".repeat(1000));
        let value = get(Some(&headers), LABELS).unwrap();
        assert!(value.len() <= 1024);
        assert!(value.chars().all(|c| c == 'é'));
    }
}
