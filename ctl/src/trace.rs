//! Job lifecycles as a Chrome/Perfetto trace (`traceEvents` JSON), built
//! only from what the services record: the job's record and the revisions
//! the bucket keeps (with the server's time of each), and the launchers'
//! runner events. Pure: the same input gives the same trace.
//!
//! One track per job (process "jobs"): spans for waiting, Slurm pending,
//! launching, idle, running the job and cleaning up, plus an instant for
//! every milestone. One track per Slurm node (process "nodes"): the
//! launchers that ran there.

use std::collections::BTreeMap;

use gha_proto::Revision;
use gha_proto::v1::{JobPhase, JobState, RunnerEvent, RunnerEventKind};
use serde_json::{Value, json};

/// What is known of one job.
#[derive(Debug, Clone, Default)]
pub struct JobHistory {
    pub record: JobState,
    /// Oldest first.
    pub revisions: Vec<Revision<JobState>>,
    /// Every event of every Slurm job the record had.
    pub events: Vec<RunnerEvent>,
}

const JOBS_PID: u32 = 1;
const NODES_PID: u32 = 2;

/// A point in a job's life, in Unix ms.
#[derive(Debug, Clone, PartialEq)]
struct Milestone {
    name: &'static str,
    at: i64,
    slurm_job_id: u64,
}

/// The milestones of one job, in time order.
fn milestones(job: &JobHistory) -> Vec<Milestone> {
    let mut out = Vec::new();
    let mut push = |name, at: i64, slurm_job_id| {
        if at > 0 {
            out.push(Milestone {
                name,
                at,
                slurm_job_id,
            });
        }
    };
    let queued = job.record.job.clone().unwrap_or_default();
    push("queued", queued.created_at_unix_ms, 0);
    push("published", queued.observed_at_unix_ms, 0);
    if let Some(first) = job.revisions.first() {
        push("record written", first.created_unix_ms, 0);
    }
    let mut seen_submit = std::collections::HashSet::new();
    let mut last_phase = None;
    for revision in &job.revisions {
        let Some(state) = &revision.value else {
            continue;
        };
        if state.slurm_job_id != 0 && seen_submit.insert(state.slurm_job_id) {
            push("sbatch", revision.created_unix_ms, state.slurm_job_id);
        }
        let phase = state.phase();
        if last_phase != Some(phase) && crate::records::is_terminal(phase) {
            push(
                terminal_name(phase),
                revision.created_unix_ms,
                state.slurm_job_id,
            );
        }
        last_phase = Some(phase);
    }
    for event in &job.events {
        let name = match event.kind() {
            RunnerEventKind::LauncherStarted => "slurm start",
            RunnerEventKind::Claimed => "jit claimed",
            RunnerEventKind::Listening => "runner listening",
            RunnerEventKind::JobStarted => "job started",
            RunnerEventKind::JobCompleted => "job completed",
            RunnerEventKind::IdleTimeout => "idle timeout",
            RunnerEventKind::Terminated => "terminated",
            RunnerEventKind::RunnerExited => "runner exited",
            RunnerEventKind::Failed => "launcher failed",
            RunnerEventKind::CleanedUp => "cleaned up",
            RunnerEventKind::Unspecified => continue,
        };
        push(name, event.at_unix_ms, event.slurm_job_id);
    }
    out.sort_by_key(|milestone| milestone.at);
    out
}

fn terminal_name(phase: JobPhase) -> &'static str {
    match phase {
        JobPhase::Done => "record done",
        JobPhase::Withdrawn => "withdrawn",
        JobPhase::Unplaceable => "unplaceable",
        _ => "failed",
    }
}

/// The spans between milestones: (name, from, to) on the job's track.
const SPANS: &[(&str, &str, &str)] = &[
    ("waiting for Slurm", "record written", "sbatch"),
    ("pending in Slurm", "sbatch", "slurm start"),
    ("launching", "slurm start", "runner listening"),
    ("idle", "runner listening", "job started"),
    ("running job", "job started", "job completed"),
    ("cleaning up", "job completed", "cleaned up"),
];

/// The whole trace.
pub fn chrome_trace(jobs: &[JobHistory]) -> Value {
    let all: Vec<(usize, Vec<Milestone>)> = jobs
        .iter()
        .enumerate()
        .map(|(index, job)| (index, milestones(job)))
        .collect();
    let origin = all
        .iter()
        .flat_map(|(_, milestones)| milestones.iter().map(|m| m.at))
        .min()
        .unwrap_or(0);
    let micros = |at: i64| (at - origin) * 1000;
    let mut events = vec![
        meta("process_name", JOBS_PID, None, "jobs"),
        meta("process_name", NODES_PID, None, "nodes"),
    ];
    for (index, milestones) in &all {
        let job = &jobs[*index];
        let queued = job.record.job.clone().unwrap_or_default();
        let tid = *index as u32 + 1;
        events.push(meta(
            "thread_name",
            JOBS_PID,
            Some(tid),
            &format!("{} {}", queued.job_id, queued.job_name),
        ));
        for milestone in milestones {
            events.push(json!({
                "name": milestone.name, "cat": "milestone", "ph": "i", "s": "t",
                "ts": micros(milestone.at), "pid": JOBS_PID, "tid": tid,
                "args": { "slurm_job_id": milestone.slurm_job_id },
            }));
        }
        // Each attempt's spans use that attempt's milestones.
        let mut by_slurm: BTreeMap<u64, Vec<&Milestone>> = BTreeMap::new();
        for milestone in milestones {
            by_slurm
                .entry(milestone.slurm_job_id)
                .or_default()
                .push(milestone);
        }
        let shared: Vec<&Milestone> = by_slurm.get(&0).cloned().unwrap_or_default();
        for (slurm_job_id, own) in &by_slurm {
            if *slurm_job_id == 0 && by_slurm.len() > 1 {
                continue;
            }
            let find = |name: &str| {
                own.iter()
                    .chain(shared.iter())
                    .find(|m| m.name == name)
                    .map(|m| m.at)
            };
            for (name, from, to) in SPANS {
                if let (Some(start), Some(end)) = (find(from), find(to))
                    && end >= start
                {
                    events.push(json!({
                        "name": name, "cat": "phase", "ph": "X",
                        "ts": micros(start), "dur": (end - start) * 1000,
                        "pid": JOBS_PID, "tid": tid,
                        "args": { "job_id": queued.job_id, "slurm_job_id": slurm_job_id },
                    }));
                }
            }
        }
    }
    events.extend(node_tracks(jobs, &micros));
    json!({ "traceEvents": events, "displayTimeUnit": "ms", "otherData": { "origin_unix_ms": origin } })
}

/// One track per node: each launcher from its start to its clean-up.
fn node_tracks(jobs: &[JobHistory], micros: &dyn Fn(i64) -> i64) -> Vec<Value> {
    let mut nodes: BTreeMap<String, Vec<(u64, i64, i64, i64)>> = BTreeMap::new();
    for job in jobs {
        let mut launchers: BTreeMap<u64, (String, i64, i64)> = BTreeMap::new();
        for event in &job.events {
            let entry = launchers
                .entry(event.slurm_job_id)
                .or_insert_with(|| (event.hostname.clone(), i64::MAX, 0));
            if entry.0.is_empty() {
                entry.0 = event.hostname.clone();
            }
            entry.1 = entry.1.min(event.at_unix_ms);
            entry.2 = entry.2.max(event.at_unix_ms);
        }
        let job_id = job.record.job.as_ref().map_or(0, |queued| queued.job_id);
        for (slurm_job_id, (host, start, end)) in launchers {
            let host = if host.is_empty() {
                "unknown".into()
            } else {
                host
            };
            nodes
                .entry(host)
                .or_default()
                .push((slurm_job_id, job_id, start, end));
        }
    }
    let mut out = Vec::new();
    for (index, (host, launchers)) in nodes.iter().enumerate() {
        let tid = index as u32 + 1;
        out.push(meta("thread_name", NODES_PID, Some(tid), host));
        for (slurm_job_id, job_id, start, end) in launchers {
            out.push(json!({
                "name": format!("slurm job {slurm_job_id}"), "cat": "launcher", "ph": "X",
                "ts": micros(*start), "dur": (end - start) * 1000,
                "pid": NODES_PID, "tid": tid,
                "args": { "job_id": job_id, "slurm_job_id": slurm_job_id },
            }));
        }
    }
    out
}

fn meta(name: &str, pid: u32, tid: Option<u32>, label: &str) -> Value {
    let mut value = json!({ "name": name, "ph": "M", "pid": pid, "args": { "name": label } });
    if let Some(tid) = tid {
        value["tid"] = json!(tid);
    }
    value
}

#[cfg(test)]
mod tests {
    use gha_proto::v1::QueuedJob;

    use super::*;

    fn revision(at: i64, phase: JobPhase, slurm_job_id: u64) -> Revision<JobState> {
        Revision {
            value: Some(JobState {
                phase: phase as i32,
                slurm_job_id,
                ..JobState::default()
            }),
            revision: at as u64,
            created_unix_ms: at,
        }
    }

    fn event(at: i64, kind: RunnerEventKind, slurm_job_id: u64) -> RunnerEvent {
        RunnerEvent {
            at_unix_ms: at,
            kind: kind as i32,
            slurm_job_id,
            hostname: "node1".into(),
            ..RunnerEvent::default()
        }
    }

    fn one_job() -> JobHistory {
        JobHistory {
            record: JobState {
                job: Some(QueuedJob {
                    job_id: 42,
                    job_name: "build".into(),
                    created_at_unix_ms: 1_000,
                    observed_at_unix_ms: 1_010,
                    ..QueuedJob::default()
                }),
                ..JobState::default()
            },
            revisions: vec![
                revision(1_020, JobPhase::Queued, 0),
                revision(1_100, JobPhase::Submitted, 7),
                revision(2_400, JobPhase::Running, 7),
                revision(4_500, JobPhase::Done, 7),
            ],
            events: vec![
                event(1_900, RunnerEventKind::LauncherStarted, 7),
                event(1_950, RunnerEventKind::Claimed, 7),
                event(2_000, RunnerEventKind::Listening, 7),
                event(2_300, RunnerEventKind::JobStarted, 7),
                event(4_300, RunnerEventKind::JobCompleted, 7),
                event(4_400, RunnerEventKind::CleanedUp, 7),
            ],
        }
    }

    fn named<'a>(trace: &'a Value, name: &str) -> Vec<&'a Value> {
        trace["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["name"] == name)
            .collect()
    }

    #[test]
    fn every_milestone_is_an_instant_relative_to_the_first() {
        let trace = chrome_trace(&[one_job()]);
        let queued = named(&trace, "queued");
        assert_eq!(queued[0]["ts"], 0);
        assert_eq!(named(&trace, "sbatch")[0]["ts"], 100_000);
        for name in [
            "published",
            "record written",
            "slurm start",
            "jit claimed",
            "runner listening",
            "job started",
            "job completed",
            "cleaned up",
            "record done",
        ] {
            assert_eq!(named(&trace, name).len(), 1, "{name}");
        }
        assert_eq!(trace["otherData"]["origin_unix_ms"], 1_000);
    }

    #[test]
    fn spans_cover_the_phases_between_milestones() {
        let trace = chrome_trace(&[one_job()]);
        let pending = named(&trace, "pending in Slurm");
        assert_eq!(
            (pending[0]["ts"].clone(), pending[0]["dur"].clone()),
            (json!(100_000), json!(800_000))
        );
        let running = named(&trace, "running job");
        assert_eq!(running[0]["dur"], 2_000_000);
        assert_eq!(named(&trace, "waiting for Slurm")[0]["dur"], 80_000);
    }

    #[test]
    fn each_node_has_a_track_with_its_launchers() {
        let trace = chrome_trace(&[one_job()]);
        let launcher = named(&trace, "slurm job 7");
        assert_eq!(launcher.len(), 1);
        assert_eq!(launcher[0]["pid"], NODES_PID);
        assert_eq!(launcher[0]["dur"], 2_500_000);
        let names: Vec<&Value> = named(&trace, "thread_name");
        assert!(names.iter().any(|m| m["args"]["name"] == "node1"));
        assert!(names.iter().any(|m| m["args"]["name"] == "42 build"));
    }

    #[test]
    fn a_second_attempt_gets_its_own_spans() {
        let mut job = one_job();
        job.revisions
            .insert(2, revision(1_500, JobPhase::Submitted, 8));
        job.events
            .push(event(1_700, RunnerEventKind::LauncherStarted, 8));
        let trace = chrome_trace(&[job]);
        assert_eq!(named(&trace, "pending in Slurm").len(), 2);
        assert_eq!(named(&trace, "sbatch").len(), 2);
    }
}
