//! `gha-ctl` against a real nats-server holding records, revisions, runner
//! events and a dead letter, as the scheduler and launchers leave them.

use std::process::Command;
use std::time::Duration;

use gha_proto::Contract;
use gha_proto::v1::{JobPhase, JobState, Placement, QueuedJob, RunnerEvent, RunnerEventKind};
use gha_testkit::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_gha-ctl");

fn record(job_id: i64, repo: &str, phase: JobPhase, slurm_job_id: u64) -> JobState {
    JobState {
        job: Some(QueuedJob {
            job_id,
            run_id: 900,
            run_attempt: 1,
            repository: repo.into(),
            job_name: format!("build-{job_id}"),
            labels: vec!["slurm".into()],
            created_at_unix_ms: gha_ctl::now_ms() - 60_000 + job_id,
            ..QueuedJob::default()
        }),
        phase: phase as i32,
        attempt: 1,
        slurm_job_id,
        placement: Some(Placement {
            pool: "cpu".into(),
            ..Placement::default()
        }),
        ..JobState::default()
    }
}

fn event(slurm_job_id: u64, job_id: i64, sequence: u32, kind: RunnerEventKind) -> RunnerEvent {
    RunnerEvent {
        slurm_job_id,
        job_id,
        sequence,
        kind: kind as i32,
        hostname: "node-a".into(),
        at_unix_ms: gha_ctl::now_ms() - 30_000 + i64::from(sequence) * 100,
        event_token: "not-for-eyes".into(),
        ..RunnerEvent::default()
    }
}

/// A bucket and event stream as a small run leaves them: job 1 done
/// through Slurm job 11 (three revisions), job 2 still queued.
async fn seeded() -> NatsServer {
    let nats = NatsServer::start().expect("nats");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let contract = Contract::new(client);
    contract.ensure_topology().await.expect("topology");
    let kv = contract.job_states().await.expect("bucket");
    let rev = kv
        .create("1", &record(1, "org/a", JobPhase::Queued, 0))
        .await
        .unwrap();
    let rev = kv
        .update("1", &record(1, "org/a", JobPhase::Submitted, 11), rev)
        .await
        .unwrap();
    kv.update("1", &record(1, "org/a", JobPhase::Done, 11), rev)
        .await
        .unwrap();
    kv.create("2", &record(2, "org/b", JobPhase::Queued, 0))
        .await
        .unwrap();
    for (sequence, kind) in [
        RunnerEventKind::LauncherStarted,
        RunnerEventKind::Listening,
        RunnerEventKind::JobStarted,
        RunnerEventKind::JobCompleted,
        RunnerEventKind::CleanedUp,
    ]
    .into_iter()
    .enumerate()
    {
        contract
            .publish(&event(11, 1, sequence as u32 + 1, kind))
            .await
            .unwrap();
    }
    // Another launcher's event, which `job 1` must not show.
    contract
        .publish(&event(12, 2, 1, RunnerEventKind::LauncherStarted))
        .await
        .unwrap();
    nats
}

fn ctl(nats: &NatsServer, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(["--nats-url", &nats.url()])
        .args(args)
        .env_remove("GHA_NATS_URL")
        .output()
        .expect("gha-ctl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

#[tokio::test]
async fn jobs_lists_filters_and_speaks_json() {
    let nats = seeded().await;
    let (ok, out, err) = ctl(&nats, &["jobs"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("JOB "), "{out}");
    assert_eq!(lines.len(), 3, "{out}");
    // Newest first: job 2 was queued after job 1.
    assert!(
        lines[1].starts_with("2 ") && lines[1].contains("queued"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("1 ") && lines[2].contains("done"),
        "{out}"
    );

    let (ok, out, err) = ctl(&nats, &["jobs", "--live", "--json"]);
    assert!(ok, "{err}");
    let records = json_lines(&out);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["job_id"], 2);
    assert_eq!(records[0]["phase"], "queued");

    let (_, out, _) = ctl(
        &nats,
        &["jobs", "--repo", "ORG/A", "--phase", "done", "--json"],
    );
    assert_eq!(json_lines(&out).len(), 1);
    let (ok, _, err) = ctl(&nats, &["jobs", "--phase", "asleep"]);
    assert!(!ok && err.contains("asleep"), "{err}");
}

#[tokio::test]
async fn job_shows_its_revisions_and_only_its_own_launchers_events() {
    let nats = seeded().await;
    let (ok, out, err) = ctl(&nats, &["job", "1", "--json"]);
    assert!(ok, "{err}");
    let value: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let phases: Vec<&str> = value["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|revision| revision["record"]["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["queued", "submitted", "done"]);
    let kinds: Vec<&str> = value["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "launcher_started",
            "listening",
            "job_started",
            "job_completed",
            "cleaned_up"
        ]
    );
    assert!(!out.contains("not-for-eyes"), "an event token was printed");

    let (ok, out, _) = ctl(&nats, &["job", "1"]);
    assert!(
        ok && out.contains("revisions kept (3)") && out.contains("events (5)"),
        "{out}"
    );
    let (ok, _, err) = ctl(&nats, &["job", "404"]);
    assert!(!ok && err.contains("no record of job 404"), "{err}");
}

#[tokio::test]
async fn events_filter_by_slurm_job_and_age() {
    let nats = seeded().await;
    let (ok, out, err) = ctl(&nats, &["events", "--json"]);
    assert!(ok, "{err}");
    assert_eq!(json_lines(&out).len(), 6);
    let (_, out, _) = ctl(&nats, &["events", "--slurm-job", "12", "--json"]);
    let events = json_lines(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["job_id"], 2);
    // Stored seconds ago: within the last minute, none older than that.
    let (_, out, _) = ctl(&nats, &["events", "--since", "1m", "--json"]);
    assert_eq!(json_lines(&out).len(), 6);
}

#[tokio::test]
async fn trace_writes_a_chrome_trace_of_the_selected_runs() {
    let nats = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.json");
    let (ok, out, err) = ctl(
        &nats,
        &["trace", "--run", "900", "-o", path.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(out.contains("trace of 2 jobs"), "{out}");
    let trace: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let names: Vec<&str> = events.iter().filter_map(|e| e["name"].as_str()).collect();
    for expected in [
        "record written",
        "sbatch",
        "slurm start",
        "running job",
        "slurm job 11",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    let (ok, out, _) = ctl(
        &nats,
        &["trace", "--run", "1", "-o", path.to_str().unwrap()],
    );
    assert!(ok && out.contains("trace of 0 jobs"), "{out}");
}

#[tokio::test]
async fn an_unreachable_nats_fails_fast_saying_so() {
    let mut nats = NatsServer::start().expect("nats");
    let url = nats.url();
    nats.kill();
    let started = std::time::Instant::now();
    let output = Command::new(BIN)
        .args(["--nats-url", &url, "--timeout", "1", "jobs"])
        .output()
        .expect("gha-ctl runs");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(err.contains("NATS unreachable at"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn help_version_and_bad_flags_before_any_io() {
    gha_testkit::cli::assert_help_and_version(
        BIN,
        "gha-ctl",
        &["jobs", "job", "events", "dead-letters", "trace"],
    );
    // A bad flag value exits 64 without contacting NATS (none runs here).
    let output = gha_testkit::cli::run(
        BIN,
        &[
            "--nats-url",
            "nats://127.0.0.1:1",
            "events",
            "--since",
            "5w",
        ],
    );
    assert_eq!(output.status.code(), Some(gha_testkit::cli::EX_USAGE));
}
