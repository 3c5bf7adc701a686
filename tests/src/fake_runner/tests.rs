//! The fake runner against [`ScriptedServer`]: each test scripts the
//! server's answers and asserts what the runner sent and printed. Timeouts
//! only bound tests; the server raises events when the runner reaches them.

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

use super::scripted_server::{CancelWhen, SESSION, Script, ScriptedServer, Seen};
use super::*;
use crate::eventually;
use crate::github::model::Step;
use crate::github::runner_api::{AssignedJob, CredentialsData, CredentialsFile, RunnerFile};

const JIT_SECRET: &str = "jit-secret";
/// Bounds a whole runner; never reached when the runner behaves.
const BOUND: Duration = Duration::from_secs(20);

pub(super) fn job(job_id: u64, name: &str, steps: Vec<Step>) -> AssignedJob {
    AssignedJob {
        job_id,
        run_id: 100,
        run_attempt: 1,
        name: name.into(),
        job_key: name.into(),
        workflow: "CI".into(),
        repository: "acme/widgets".into(),
        steps,
    }
}

/// A runner root per test.
pub(super) fn runner_root() -> TempDir {
    tempfile::Builder::new()
        .prefix("fake-runner-root-")
        .tempdir()
        .unwrap()
}

/// A JIT config as the emulator hands it out.
pub(super) fn encoded_jit_config(server_url: &str) -> String {
    JitConfig {
        runner: RunnerFile {
            agent_id: 7,
            agent_name: "jit-runner".into(),
            pool_id: 1,
            pool_name: "Default".into(),
            server_url: server_url.into(),
            git_hub_url: "http://127.0.0.1:1/acme/widgets".into(),
            work_folder: "_work".into(),
            ephemeral: true,
            disable_update: true,
        },
        credentials: CredentialsFile {
            scheme: "OAuthAccessToken".into(),
            data: CredentialsData {
                client_id: "c".into(),
                authorization_url: format!("{server_url}/token"),
                token: JIT_SECRET.into(),
            },
        },
    }
    .encode()
}

pub(super) fn fast(root: &Path, source: CredentialSource) -> FakeRunnerConfig {
    FakeRunnerConfig {
        poll_wait: Duration::from_millis(50),
        progress_interval: Duration::from_millis(10),
        retry: Retry {
            attempts: 3,
            backoff: Duration::from_millis(10),
        },
        ..FakeRunnerConfig::new(root, source)
    }
}

pub(super) fn jit_config(server: &ScriptedServer, root: &Path) -> FakeRunnerConfig {
    fast(
        root,
        CredentialSource::Jit(Secret::new(encoded_jit_config(&server.url))),
    )
}

fn registration_config(server_url: &str, root: &Path, ephemeral: bool) -> FakeRunnerConfig {
    fast(
        root,
        CredentialSource::Registration {
            server_url: server_url.into(),
            token: Secret::new("reg-token"),
            name: "node1-runner".into(),
            labels: vec!["self-hosted".into(), "slurm".into()],
            ephemeral,
        },
    )
}

/// Runs the runner to its end, bounded.
pub(super) async fn run_bounded(
    config: FakeRunnerConfig,
    transcript: &Transcript,
    shutdown: CancellationToken,
) -> Result<RunnerExit, FakeRunnerError> {
    tokio::time::timeout(BOUND, run(config, transcript.clone(), shutdown))
        .await
        .expect("the runner did not finish")
}

/// The transcript with each event line's timestamp checked and removed.
pub(super) fn without_timestamps(transcript: &Transcript) -> Vec<String> {
    transcript
        .lines()
        .into_iter()
        .map(|line| match line.split_once("Z: ") {
            Some((stamp, event))
                if chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S").is_ok() =>
            {
                event.to_owned()
            }
            _ => line,
        })
        .collect()
}

const GREETING: [&str; 4] = [
    "√ Connected to GitHub",
    "",
    "Current runner version: '2.321.0'",
    "Listening for Jobs",
];

pub(super) fn expected(events: &[&str]) -> Vec<String> {
    GREETING
        .iter()
        .chain(events)
        .map(|line| line.to_string())
        .collect()
}

/// Runs one job on a JIT runner and returns what the server saw.
async fn run_one_job(steps: Vec<Step>, cancel: CancelWhen) -> (RunnerExit, Seen, Vec<String>) {
    let server = ScriptedServer::start(Script {
        jobs: [job(42, "build", steps)].into(),
        cancel,
        ..Script::default()
    })
    .await;
    let root = runner_root();
    let transcript = Transcript::default();
    let exit = run_bounded(
        jit_config(&server, root.path()),
        &transcript,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    (exit, server.seen(), without_timestamps(&transcript))
}

#[tokio::test]
async fn a_jit_runner_runs_its_one_job_reports_success_and_goes_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let steps = vec![
        Step::Run {
            command: format!("echo hi > '{}'", out.display()),
        },
        Step::Sleep { ms: 10 },
    ];
    let (exit, seen, lines) = run_one_job(steps, CancelWhen::Never).await;

    assert_eq!(
        exit,
        RunnerExit::JobDone {
            result: JobResult::Succeeded
        }
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hi\n");
    assert_eq!(
        seen.sessions,
        [SessionRequest::Jit {
            jit_token: JIT_SECRET.into()
        }]
    );
    assert_eq!(seen.completed, [(42, JobResult::Succeeded)]);
    assert_eq!(seen.deleted, [SESSION]);
    assert_eq!(
        lines,
        expected(&[
            "Running job: build",
            "Job build completed with result: Succeeded"
        ])
    );
    assert!(lines.iter().all(|line| !line.contains(JIT_SECRET)));
}

#[tokio::test]
async fn a_fail_step_fails_the_job_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let steps = vec![
        Step::Fail,
        Step::Run {
            command: format!("touch '{}'", marker.display()),
        },
    ];
    let (exit, seen, lines) = run_one_job(steps, CancelWhen::Never).await;

    assert_eq!(
        exit,
        RunnerExit::JobDone {
            result: JobResult::Failed
        }
    );
    assert_eq!(seen.completed, [(42, JobResult::Failed)]);
    assert!(!marker.exists(), "a step after the failed one ran");
    assert_eq!(
        lines.last().unwrap(),
        "Job build completed with result: Failed"
    );
}

#[tokio::test]
async fn a_command_exiting_non_zero_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let steps = vec![
        Step::Run {
            command: "exit 3".into(),
        },
        Step::Run {
            command: format!("touch '{}'", marker.display()),
        },
    ];
    let (_, seen, _) = run_one_job(steps, CancelWhen::Never).await;

    assert_eq!(seen.completed, [(42, JobResult::Failed)]);
    assert!(!marker.exists(), "a step after the failed one ran");
}

#[tokio::test]
async fn a_job_the_server_cancels_is_reported_cancelled() {
    let (exit, seen, lines) = run_one_job(vec![Step::Hang], CancelWhen::Always).await;

    assert_eq!(
        exit,
        RunnerExit::JobDone {
            result: JobResult::Cancelled
        }
    );
    assert_eq!(seen.completed, [(42, JobResult::Cancelled)]);
    assert_eq!(seen.deleted, [SESSION]);
    assert_eq!(
        lines.last().unwrap(),
        "Job build completed with result: Canceled"
    );
}

/// Whether `pid` has exited (gone, or a zombie nobody reaped yet).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test]
async fn cancelling_kills_the_running_command_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The shell starts a child and waits for it; the server cancels once
    // both pids are written.
    let command = format!(
        "sleep 600 & echo \"$$ $!\" > '{0}.tmp' && mv '{0}.tmp' '{0}'; wait",
        pids.display()
    );
    let (_, seen, _) = run_one_job(
        vec![Step::Run { command }],
        CancelWhen::FileExists(pids.clone()),
    )
    .await;

    assert_eq!(seen.completed, [(42, JobResult::Cancelled)]);
    let text = std::fs::read_to_string(&pids).unwrap();
    let (shell, sleeper) = text.trim().split_once(' ').unwrap();
    let (shell, sleeper): (u32, u32) = (shell.parse().unwrap(), sleeper.parse().unwrap());
    assert!(exited(shell), "the step's shell outlived the cancellation");
    let died = eventually(
        "the step's child to die",
        Duration::from_secs(5),
        || async { exited(sleeper).then_some(()) },
    )
    .await;
    if let Err(err) = died {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", &sleeper.to_string()])
            .status();
        panic!("{err}");
    }
}

#[tokio::test]
async fn a_refused_credential_is_an_error_before_anything_is_printed() {
    let server = ScriptedServer::start(Script {
        refuse_credential: true,
        ..Script::default()
    })
    .await;
    let root = runner_root();
    let transcript = Transcript::default();
    let err = run_bounded(
        jit_config(&server, root.path()),
        &transcript,
        CancellationToken::new(),
    )
    .await
    .unwrap_err();

    assert!(
        matches!(&err, FakeRunnerError::CredentialRefused { message } if message == "credential already used"),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), EXIT_FAILURE);
    assert!(transcript.lines().is_empty(), "{:?}", transcript.lines());
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = ScriptedServer::start(Script {
        unavailable_sessions: 2,
        jobs: [job(1, "quick", vec![])].into(),
        ..Script::default()
    })
    .await;
    let root = runner_root();
    let exit = run_bounded(
        jit_config(&server, root.path()),
        &Transcript::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    assert_eq!(
        exit,
        RunnerExit::JobDone {
            result: JobResult::Succeeded
        }
    );
    assert_eq!(server.seen().sessions.len(), 3);
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_after_a_bounded_number_of_tries() {
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let root = runner_root();
    let config = registration_config(&format!("http://{closed}/_runner"), root.path(), false);
    let err = run_bounded(config, &Transcript::default(), CancellationToken::new())
        .await
        .unwrap_err();

    assert!(
        matches!(err, FakeRunnerError::Unreachable { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), EXIT_FAILURE);
}

#[tokio::test]
async fn shutdown_while_idle_deletes_the_session_and_exits() {
    let shutdown = CancellationToken::new();
    let server = ScriptedServer::start(Script {
        shutdown_when_idle: Some(shutdown.clone()),
        ..Script::default()
    })
    .await;
    let root = runner_root();
    let transcript = Transcript::default();
    let exit = run_bounded(
        registration_config(&server.url, root.path(), false),
        &transcript,
        shutdown,
    )
    .await
    .unwrap();

    assert_eq!(exit, RunnerExit::ShutDown);
    let seen = server.seen();
    assert_eq!(seen.deleted, [SESSION]);
    assert!(seen.completed.is_empty());
    assert_eq!(without_timestamps(&transcript), expected(&[]));
}

#[tokio::test]
async fn shutdown_during_a_job_cancels_it_then_exits() {
    let shutdown = CancellationToken::new();
    let server = ScriptedServer::start(Script {
        jobs: [job(42, "build", vec![Step::Hang])].into(),
        shutdown_during_job: Some(shutdown.clone()),
        ..Script::default()
    })
    .await;
    let root = runner_root();
    let transcript = Transcript::default();
    let exit = run_bounded(jit_config(&server, root.path()), &transcript, shutdown)
        .await
        .unwrap();

    assert_eq!(exit, RunnerExit::ShutDown);
    let seen = server.seen();
    assert_eq!(seen.completed, [(42, JobResult::Cancelled)]);
    assert_eq!(seen.deleted, [SESSION]);
    assert_eq!(
        without_timestamps(&transcript),
        expected(&[
            "Running job: build",
            "Job build completed with result: Canceled",
        ])
    );
}

#[tokio::test]
async fn shutdown_before_connecting_exits_without_a_session() {
    let server = ScriptedServer::start(Script::default()).await;
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let root = runner_root();
    let transcript = Transcript::default();
    let exit = run_bounded(jit_config(&server, root.path()), &transcript, shutdown)
        .await
        .unwrap();

    assert_eq!(exit, RunnerExit::ShutDown);
    assert!(server.seen().sessions.is_empty());
    assert!(transcript.lines().is_empty(), "{:?}", transcript.lines());
}

#[tokio::test]
async fn a_registered_runner_takes_jobs_until_shut_down() {
    let shutdown = CancellationToken::new();
    let server = ScriptedServer::start(Script {
        jobs: [
            job(1, "test (1)", vec![Step::Sleep { ms: 1 }]),
            job(2, "test (2)", vec![Step::Fail]),
        ]
        .into(),
        shutdown_when_idle: Some(shutdown.clone()),
        ..Script::default()
    })
    .await;
    let root = runner_root();
    let transcript = Transcript::default();
    let exit = run_bounded(
        registration_config(&server.url, root.path(), false),
        &transcript,
        shutdown,
    )
    .await
    .unwrap();

    assert_eq!(exit, RunnerExit::ShutDown);
    let seen = server.seen();
    assert_eq!(
        seen.sessions,
        [SessionRequest::Registration {
            registration_token: "reg-token".into(),
            name: "node1-runner".into(),
            labels: vec!["self-hosted".into(), "slurm".into()],
            ephemeral: false,
        }]
    );
    assert_eq!(
        seen.completed,
        [(1, JobResult::Succeeded), (2, JobResult::Failed)]
    );
    assert_eq!(seen.deleted, [SESSION]);
    assert_eq!(
        without_timestamps(&transcript),
        expected(&[
            "Running job: test (1)",
            "Job test (1) completed with result: Succeeded",
            "Running job: test (2)",
            "Job test (2) completed with result: Failed",
        ])
    );
}
