//! How records and events look to people (aligned tables) and to scripts
//! (JSON with readable enum names). Pure: strings in, strings out.

use gha_proto::Revision;
use gha_proto::v1::{JobState, RunnerEvent};
use serde_json::{Value, json};

/// A short readable name for an enum value: `JOB_PHASE_RUNNING` ->
/// `running`.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

/// `2026-12-01T21:26:59.123Z`, or empty for 0.
pub fn timestamp(unix_ms: i64) -> String {
    if unix_ms <= 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|at| at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// `12s`, `4m10s`, `3h02m`, `2d05h`: how long ago, for tables.
pub fn age(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= 0 {
        return "-".into();
    }
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// One record as JSON.
pub fn record_json(state: &JobState) -> Value {
    let job = state.job.clone().unwrap_or_default();
    let placement = state.placement.clone().unwrap_or_default();
    json!({
        "job_id": job.job_id,
        "repository": job.repository,
        "run_id": job.run_id,
        "run_attempt": job.run_attempt,
        "workflow": job.workflow_name,
        "job_name": job.job_name,
        "labels": job.labels,
        "html_url": job.html_url,
        "phase": short(state.phase().as_str_name(), "JOB_PHASE_"),
        "reason": state.reason,
        "attempt": state.attempt,
        "pool": placement.pool,
        "partition": placement.partition,
        "cpus": placement.cpus,
        "mem_mib": placement.mem_mib,
        "image": placement.image,
        "runtime": placement.runtime,
        "slurm_job_id": state.slurm_job_id,
        "slurm_job_name": state.slurm_job_name,
        "correlation_id": state.correlation_id,
        "runner_name": state.runner_name,
        "runner_id": state.runner_id,
        "github_status": short(state.github_status().as_str_name(), "JOB_STATUS_"),
        "queued_at": timestamp(crate::records::queued_at(state)),
        "observed_at": timestamp(job.observed_at_unix_ms),
        "phase_since": timestamp(state.phase_since_unix_ms),
        "updated_at": timestamp(state.updated_at_unix_ms),
    })
}

/// One runner event as JSON (never its event token).
pub fn event_json(event: &RunnerEvent) -> Value {
    json!({
        "slurm_job_id": event.slurm_job_id,
        "job_id": event.job_id,
        "sequence": event.sequence,
        "kind": short(event.kind().as_str_name(), "RUNNER_EVENT_KIND_"),
        "at": timestamp(event.at_unix_ms),
        "hostname": event.hostname,
        "runner_name": event.runner_name,
        "github_job_name": event.github_job_name,
        "repository": event.repository,
        "run_id": event.run_id,
        "run_attempt": event.run_attempt,
        "github_job": event.github_job,
        "result": event.result,
        "exit_code": event.exit_code,
        "message": event.message,
        "correlation_id": event.correlation_id,
    })
}

/// A revision of a record as JSON.
pub fn revision_json(revision: &Revision<JobState>) -> Value {
    json!({
        "revision": revision.revision,
        "at": timestamp(revision.created_unix_ms),
        "record": revision.value.as_ref().map(record_json),
    })
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (index, cell) in cells.into_iter().enumerate() {
            if index == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The `jobs` table.
pub fn jobs_table(records: &[JobState], now_ms: i64) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|state| {
            let job = state.job.clone().unwrap_or_default();
            vec![
                job.job_id.to_string(),
                job.repository.clone(),
                job.job_name.clone(),
                short(state.phase().as_str_name(), "JOB_PHASE_"),
                state
                    .placement
                    .as_ref()
                    .map(|placement| placement.pool.clone())
                    .unwrap_or_default(),
                state.attempt.to_string(),
                if state.slurm_job_id == 0 {
                    "-".into()
                } else {
                    state.slurm_job_id.to_string()
                },
                age(now_ms, crate::records::queued_at(state)),
                state.reason.clone(),
            ]
        })
        .collect();
    table(
        &[
            "JOB", "REPO", "NAME", "PHASE", "POOL", "TRY", "SLURM", "AGE", "REASON",
        ],
        &rows,
    )
}

/// The `events` table.
pub fn events_table(events: &[RunnerEvent]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|event| {
            let detail = [
                event.github_job_name.as_str(),
                event.result.as_str(),
                event.message.as_str(),
            ]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
            vec![
                timestamp(event.at_unix_ms),
                event.slurm_job_id.to_string(),
                event.job_id.to_string(),
                event.sequence.to_string(),
                short(event.kind().as_str_name(), "RUNNER_EVENT_KIND_"),
                event.hostname.clone(),
                detail,
            ]
        })
        .collect();
    table(
        &["AT", "SLURM", "JOB", "SEQ", "EVENT", "HOST", "DETAIL"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use gha_proto::v1::{JobPhase, QueuedJob, RunnerEventKind};

    use super::*;

    #[test]
    fn tables_align_columns_and_do_not_pad_the_last() {
        let text = table(
            &["A", "LONG HEADER", "Z"],
            &[
                vec!["xxxx".into(), "y".into(), "end".into()],
                vec!["x".into(), "".into(), "".into()],
            ],
        );
        assert_eq!(text, "A     LONG HEADER  Z\nxxxx  y            end\nx\n");
    }

    #[test]
    fn ages_read_like_people_write_them() {
        assert_eq!(age(61_000, 0), "-");
        assert_eq!(age(10_000, 1_000), "9s");
        assert_eq!(age(250_000, 1), "4m09s");
        assert_eq!(age(3 * 3_600_000 + 120_000, 1), "3h01m");
        assert_eq!(age(2 * 86_400_000 + 5 * 3_600_000, 1), "2d04h");
    }

    #[test]
    fn json_uses_short_enum_names_and_leaves_the_token_out() {
        let state = JobState {
            job: Some(QueuedJob {
                job_id: 7,
                ..QueuedJob::default()
            }),
            phase: JobPhase::Running as i32,
            ..JobState::default()
        };
        let value = record_json(&state);
        assert_eq!(value["phase"], "running");
        assert_eq!(value["github_status"], "unspecified");
        let event = RunnerEvent {
            kind: RunnerEventKind::JobStarted as i32,
            event_token: "secret-token".into(),
            ..RunnerEvent::default()
        };
        let text = event_json(&event).to_string();
        assert!(text.contains("\"job_started\""), "{text}");
        assert!(!text.contains("secret-token"), "{text}");
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(timestamp(0), "");
        assert_eq!(timestamp(1_764_624_419_123), "2025-12-01T21:26:59.123Z");
    }
}
