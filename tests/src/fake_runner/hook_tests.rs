//! The fake runner's root files, job environment and job hooks, against
//! [`ScriptedServer`]: what the real runner writes where, and when its
//! hooks run (`JobExtension.cs`, `JobHookProvider.cs` in actions/runner).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::scripted_server::{CancelWhen, Script, ScriptedServer};
use super::tests::{
    encoded_jit_config, expected, fast, jit_config, job, run_bounded, runner_root,
    without_timestamps,
};
use super::*;
use crate::github::model::Step;

/// Writes an executable hook script `name` into `dir`.
fn hook(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    path
}

/// A step that appends `word` to `trace`.
fn append(trace: &Path, word: &str) -> Step {
    Step::Run {
        command: format!("echo {word} >> '{}'", trace.display()),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn a_jit_runner_writes_its_files_into_its_root_and_reads_them_back() {
    let server = ScriptedServer::start(Script {
        jobs: [job(1, "build", vec![])].into(),
        ..Script::default()
    })
    .await;
    let root = runner_root();
    run_bounded(
        jit_config(&server, root.path()),
        &Transcript::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    for file in [".runner", ".credentials", ".credentials_rsaparams"] {
        assert!(root.path().join(file).is_file(), "{file} missing");
    }
    assert!(read(&root.path().join(".credentials")).contains("jit-secret"));
    assert!(read(&root.path().join(".runner")).contains(&server.url));
    assert!(
        root.path().join("_work/widgets/widgets").is_dir(),
        "workspace"
    );
}

#[tokio::test]
async fn a_configured_root_runs_without_a_jit_config_and_an_empty_one_is_not_configured() {
    let server = ScriptedServer::start(Script {
        jobs: [job(1, "build", vec![])].into(),
        ..Script::default()
    })
    .await;
    let root = runner_root();
    RunnerRoot::new(root.path())
        .write_jit_config(&encoded_jit_config(&server.url))
        .unwrap();
    let exit = run_bounded(
        fast_configured(root.path()),
        &Transcript::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(matches!(exit, RunnerExit::JobDone { .. }), "{exit:?}");

    let empty = runner_root();
    let err = run_bounded(
        fast_configured(empty.path()),
        &Transcript::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.to_string(), "Runner is not configured.");
    assert_eq!(err.exit_code(), EXIT_FAILURE);
}

fn fast_configured(root: &Path) -> FakeRunnerConfig {
    fast(root, CredentialSource::Configured)
}

/// Runs `steps` as job 42 ("Build (linux)", key `build`, attempt 3) with
/// `hooks`; returns the result and the transcript.
async fn run_with_hooks(
    root: &Path,
    hooks: JobHooks,
    steps: Vec<Step>,
    cancel: CancelWhen,
    worker_cancel_timeout: Duration,
) -> (JobResult, Vec<String>) {
    let mut assigned = job(42, "Build (linux)", steps);
    assigned.job_key = "build".into();
    assigned.run_attempt = 3;
    let server = ScriptedServer::start(Script {
        jobs: [assigned].into(),
        cancel,
        ..Script::default()
    })
    .await;
    let transcript = Transcript::default();
    let config = FakeRunnerConfig {
        hooks,
        worker_cancel_timeout,
        ..jit_config(&server, root)
    };
    let exit = run_bounded(config, &transcript, CancellationToken::new())
        .await
        .unwrap();
    let RunnerExit::JobDone { result } = exit else {
        panic!("{exit:?}");
    };
    assert_eq!(server.seen().completed, [(42, result)]);
    (result, without_timestamps(&transcript))
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn hooks_run_around_the_steps_with_the_jobs_github_variables() {
    let root = runner_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let env_dump = dir.path().join("env");
    let hooks = JobHooks {
        started: Some(hook(
            dir.path(),
            "started.sh",
            &format!(
                "echo started >> '{t}'; env > '{e}'; pwd >> '{e}'",
                t = trace.display(),
                e = env_dump.display()
            ),
        )),
        completed: Some(hook(
            dir.path(),
            "completed.sh",
            &format!("echo completed >> '{}'", trace.display()),
        )),
    };
    let (result, lines) = run_with_hooks(
        root.path(),
        hooks,
        vec![append(&trace, "step")],
        CancelWhen::Never,
        LONG,
    )
    .await;

    assert_eq!(result, JobResult::Succeeded);
    assert_eq!(read(&trace), "started\nstep\ncompleted\n");
    let env = read(&env_dump);
    for var in [
        "GITHUB_REPOSITORY=acme/widgets",
        "GITHUB_RUN_ID=100",
        "GITHUB_RUN_ATTEMPT=3",
        "GITHUB_JOB=build",
        "GITHUB_WORKFLOW=CI",
        "GITHUB_ACTIONS=true",
        "RUNNER_NAME=jit-runner",
    ] {
        assert!(env.lines().any(|line| line == var), "{var} not in\n{env}");
    }
    let workspace = std::fs::canonicalize(root.path().join("_work/widgets/widgets")).unwrap();
    assert!(
        env.lines().any(|line| Path::new(line) == workspace),
        "a hook runs in the workspace:\n{env}"
    );
    assert_eq!(
        lines,
        expected(&[
            "Running job: Build (linux)",
            "Job Build (linux) completed with result: Succeeded"
        ]),
        "hook and step output go to the job's log, not the runner's stdout"
    );
    let log = read(&root.path().join("_diag/pages/42.log"));
    assert!(
        log.contains(
            "A job started hook has been configured by the self-hosted runner administrator"
        ),
        "{log}"
    );
}

#[tokio::test]
async fn a_failing_started_hook_fails_the_job_skips_the_steps_but_not_the_completed_hook() {
    let root = runner_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let hooks = JobHooks {
        started: Some(hook(dir.path(), "started.sh", "exit 3")),
        completed: Some(hook(
            dir.path(),
            "completed.sh",
            &format!("echo completed >> '{}'", trace.display()),
        )),
    };
    let (result, _) = run_with_hooks(
        root.path(),
        hooks,
        vec![append(&trace, "step")],
        CancelWhen::Never,
        LONG,
    )
    .await;
    assert_eq!(result, JobResult::Failed);
    assert_eq!(read(&trace), "completed\n");
}

#[tokio::test]
async fn a_failing_completed_hook_fails_a_job_whose_steps_passed() {
    let root = runner_root();
    let dir = tempfile::tempdir().unwrap();
    let hooks = JobHooks {
        started: None,
        // `sh -e` (or bash -e): the first failing command ends the script.
        completed: Some(hook(dir.path(), "completed.sh", "false\nexit 0")),
    };
    let (result, lines) = run_with_hooks(root.path(), hooks, vec![], CancelWhen::Never, LONG).await;
    assert_eq!(result, JobResult::Failed);
    assert_eq!(
        lines.last().unwrap(),
        "Job Build (linux) completed with result: Failed"
    );
}

#[tokio::test]
async fn a_missing_hook_or_one_not_ending_in_sh_fails_the_job() {
    let dir = tempfile::tempdir().unwrap();
    for path in [
        dir.path().join("absent.sh"),
        hook(dir.path(), "hook.py", "true"),
    ] {
        let root = runner_root();
        let hooks = JobHooks {
            started: Some(path.clone()),
            completed: None,
        };
        let (result, _) = run_with_hooks(root.path(), hooks, vec![], CancelWhen::Never, LONG).await;
        assert_eq!(result, JobResult::Failed, "{}", path.display());
    }
}

#[tokio::test]
async fn a_cancelled_job_still_runs_its_completed_hook() {
    let root = runner_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let hooks = JobHooks {
        started: None,
        completed: Some(hook(
            dir.path(),
            "completed.sh",
            &format!("echo completed >> '{}'", trace.display()),
        )),
    };
    let (result, _) = run_with_hooks(
        root.path(),
        hooks,
        vec![Step::Hang],
        CancelWhen::Always,
        LONG,
    )
    .await;
    assert_eq!(result, JobResult::Cancelled);
    assert_eq!(read(&trace), "completed\n");
}

#[tokio::test]
async fn a_worker_killed_after_the_cancel_timeout_stops_its_hook_and_reports_cancelled() {
    let root = runner_root();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let hooks = JobHooks {
        started: None,
        completed: Some(hook(
            dir.path(),
            "completed.sh",
            &format!(
                "echo begun >> '{}'; sleep 600; echo finished >> '{0}'",
                trace.display()
            ),
        )),
    };
    let started = std::time::Instant::now();
    let (result, _) = run_with_hooks(
        root.path(),
        hooks,
        vec![Step::Hang],
        CancelWhen::Always,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(result, JobResult::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!read(&trace).contains("finished"), "{}", read(&trace));
}

#[tokio::test]
async fn no_hook_runs_when_no_job_comes() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let shutdown = CancellationToken::new();
    let server = ScriptedServer::start(Script {
        shutdown_when_idle: Some(shutdown.clone()),
        ..Script::default()
    })
    .await;
    let root = runner_root();
    let config = FakeRunnerConfig {
        hooks: JobHooks {
            started: Some(hook(
                dir.path(),
                "s.sh",
                &format!("touch '{}'", trace.display()),
            )),
            completed: Some(hook(
                dir.path(),
                "c.sh",
                &format!("touch '{}'", trace.display()),
            )),
        },
        ..jit_config(&server, root.path())
    };
    let exit = run_bounded(config, &Transcript::default(), shutdown)
        .await
        .unwrap();
    assert_eq!(exit, RunnerExit::ShutDown);
    assert!(!trace.exists(), "a hook ran without a job");
}

#[tokio::test]
async fn a_worker_killed_before_its_completed_hook_skips_it() {
    let root = runner_root();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("completed");
    // A started hook does not stop for a job cancellation (always()): the
    // worker is killed in it, and the completed hook never starts.
    let hooks = JobHooks {
        started: Some(hook(dir.path(), "started.sh", "sleep 600")),
        completed: Some(hook(
            dir.path(),
            "completed.sh",
            &format!("touch '{}'", marker.display()),
        )),
    };
    let (result, lines) = run_with_hooks(
        root.path(),
        hooks,
        vec![],
        CancelWhen::Always,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(result, JobResult::Cancelled);
    assert_eq!(
        lines.last().unwrap(),
        "Job Build (linux) completed with result: Canceled"
    );
    assert!(
        !marker.exists(),
        "the completed hook ran in a killed worker"
    );
}
