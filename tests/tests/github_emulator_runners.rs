//! Runners against the emulator, end to end: a JIT config minted over REST,
//! the `fake-runner` listener (`bin/Runner.Listener run` of a runner laid
//! out per test) connecting with it, jobs assigned by labels and `needs:`,
//! cancellation and signals.

use std::process::Stdio;
use std::time::Duration;

use gha_testkit::eventually;
use gha_testkit::fake_runner::layout;
use gha_testkit::github::{Conclusion, GitHubEmulator, JobSpec, JobStatus, Step, WorkflowSpec};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const REPO: &str = "acme/widgets";
const DEADLINE: Duration = Duration::from_secs(20);

/// A listener process of a runner laid out in its own directory, and its
/// stdout, line by line.
struct FakeRunner {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    seen: Vec<String>,
    _root: tempfile::TempDir,
}

/// A runner laid out in a new directory, and its listener as a command.
fn listener() -> (tempfile::TempDir, Command) {
    let root = tempfile::tempdir().unwrap();
    layout::install(root.path(), env!("CARGO_BIN_EXE_fake-runner").as_ref()).unwrap();
    let mut command = Command::new(root.path().join(layout::LISTENER));
    command.arg("run");
    (root, command)
}

impl FakeRunner {
    fn start(jitconfig: &str) -> Self {
        let (root, mut command) = listener();
        command.env("ACTIONS_RUNNER_INPUT_JITCONFIG", jitconfig);
        Self::spawn(root, command)
    }

    /// Registers with a registration token instead of a JIT config.
    fn register(server_url: &str, token: &str, name: &str, labels: &str) -> Self {
        let (root, mut command) = listener();
        command.env("ACTIONS_RUNNER_INPUT_TOKEN", token).args([
            "--url",
            server_url,
            "--name",
            name,
            "--labels",
            labels,
            "--ephemeral",
        ]);
        Self::spawn(root, command)
    }

    fn spawn(root: tempfile::TempDir, mut command: Command) -> Self {
        let mut child = command
            .args(["--poll-wait-ms", "2000", "--progress-interval-ms", "50"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            lines,
            seen: Vec::new(),
            _root: root,
        }
    }

    /// Waits for a line containing `text`; returns it.
    async fn expect_line(&mut self, text: &str) -> String {
        loop {
            match tokio::time::timeout(DEADLINE, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                other => panic!("no line with {text:?} ({other:?}); saw {:#?}", self.seen),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().unwrap().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait(mut self) -> (i32, String) {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("fake-runner exits")
            .unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        (status.code().unwrap_or(-1), stderr)
    }
}

async fn jit_config(emulator: &GitHubEmulator, name: &str, labels: &[&str]) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!(
            "{}/repos/{REPO}/actions/runners/generate-jitconfig",
            emulator.url()
        ))
        .bearer_auth(emulator.token())
        .json(&json!({"name": name, "runner_group_id": 1, "labels": labels}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["encoded_jit_config"].as_str().unwrap().to_string()
}

async fn runner_status(emulator: &GitHubEmulator, name: &str) -> Option<(String, bool)> {
    let runners: Value = reqwest::Client::new()
        .get(format!("{}/repos/{REPO}/actions/runners", emulator.url()))
        .bearer_auth(emulator.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    runners["runners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|runner| runner["name"] == name)
        .map(|runner| {
            (
                runner["status"].as_str().unwrap().to_string(),
                runner["busy"].as_bool().unwrap(),
            )
        })
}

async fn wait_run(emulator: &GitHubEmulator, run_id: u64) -> Option<Conclusion> {
    eventually("the run to complete", DEADLINE, || async {
        let (status, conclusion) = emulator.run_status(run_id);
        (status == JobStatus::Completed).then_some(conclusion)
    })
    .await
    .unwrap()
}

/// Starts a run of one job `name` doing `steps`.
fn one_job_run(emulator: &GitHubEmulator, name: &str, labels: &[&str], steps: Vec<Step>) -> u64 {
    emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new(name, labels).steps(steps)]),
        )
        .unwrap()
}

async fn emulator() -> GitHubEmulator {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo(REPO);
    emulator
}

#[tokio::test]
async fn a_jit_runner_goes_online_runs_one_job_and_is_removed() {
    let emulator = emulator().await;
    let config = jit_config(&emulator, "gha-node1-1", &["self-hosted", "slurm"]).await;
    let mut runner = FakeRunner::start(&config);
    runner.expect_line("Listening for Jobs").await;
    let online = eventually("the runner online", DEADLINE, || async {
        runner_status(&emulator, "gha-node1-1")
            .await
            .filter(|(status, busy)| status == "online" && !busy)
    })
    .await;
    assert!(online.is_ok());

    let run_id = one_job_run(
        &emulator,
        "build",
        &["slurm"],
        vec![
            Step::Run {
                command: "true".into(),
            },
            Step::Sleep { ms: 10 },
        ],
    );
    runner.expect_line("Running job: build").await;
    let done = runner
        .expect_line("Job build completed with result: Succeeded")
        .await;
    assert!(
        done.len() > 22 && done.as_bytes()[10] == b' ' && done[..22].ends_with("Z: "),
        "timestamp prefix: {done}"
    );
    let (code, _) = runner.wait().await;
    assert_eq!(code, 0);
    assert_eq!(wait_run(&emulator, run_id).await, Some(Conclusion::Success));
    let job = &emulator.run_jobs(run_id, false)[0];
    assert_eq!(job.runner.as_ref().unwrap().1, "gha-node1-1");
    assert_eq!(
        runner_status(&emulator, "gha-node1-1").await,
        None,
        "ephemeral runner removed"
    );
}

#[tokio::test]
async fn a_jit_config_used_once_is_refused_the_second_time() {
    let emulator = emulator().await;
    let config = jit_config(&emulator, "r1", &["slurm"]).await;
    let mut first = FakeRunner::start(&config);
    first.expect_line("Listening for Jobs").await;
    let second = FakeRunner::start(&config);
    let (code, stderr) = second.wait().await;
    assert_ne!(code, 0);
    assert!(stderr.contains("already used"), "{stderr}");
}

#[tokio::test]
async fn jobs_with_needs_run_in_order_on_two_runners() {
    let emulator = emulator().await;
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new(
                "CI",
                vec![
                    JobSpec::new("build", &["slurm"]),
                    JobSpec::new("test", &["slurm"]).needs(&["build"]),
                ],
            ),
        )
        .unwrap();
    let mut first = FakeRunner::start(&jit_config(&emulator, "r1", &["slurm"]).await);
    first.expect_line("Running job: build").await;
    let mut second = FakeRunner::start(&jit_config(&emulator, "r2", &["slurm"]).await);
    second.expect_line("Running job: test").await;
    second
        .expect_line("Job test completed with result: Succeeded")
        .await;
    assert_eq!(wait_run(&emulator, run_id).await, Some(Conclusion::Success));
    let jobs = emulator.run_jobs(run_id, false);
    let build = jobs.iter().find(|job| job.spec.name == "build").unwrap();
    let test = jobs.iter().find(|job| job.spec.name == "test").unwrap();
    assert!(test.started_at.unwrap() >= build.completed_at.unwrap());
}

#[tokio::test]
async fn cancelling_the_run_stops_a_hanging_job() {
    let emulator = emulator().await;
    let run_id = one_job_run(&emulator, "soak", &["slurm"], vec![Step::Hang]);
    let mut runner = FakeRunner::start(&jit_config(&emulator, "r1", &["slurm"]).await);
    runner.expect_line("Running job: soak").await;
    emulator.cancel_run(run_id).unwrap();
    runner
        .expect_line("Job soak completed with result: Canceled")
        .await;
    assert_eq!(
        wait_run(&emulator, run_id).await,
        Some(Conclusion::Cancelled)
    );
}

#[tokio::test]
async fn a_failing_step_fails_the_job() {
    let emulator = emulator().await;
    let run_id = one_job_run(
        &emulator,
        "lint",
        &["slurm"],
        vec![Step::Run {
            command: "exit 3".into(),
        }],
    );
    let mut runner = FakeRunner::start(&jit_config(&emulator, "r1", &["slurm"]).await);
    runner
        .expect_line("Job lint completed with result: Failed")
        .await;
    assert_eq!(wait_run(&emulator, run_id).await, Some(Conclusion::Failure));
}

#[tokio::test]
async fn sigterm_while_idle_exits_cleanly_and_the_runner_goes_offline() {
    let emulator = emulator().await;
    let mut runner = FakeRunner::start(&jit_config(&emulator, "r1", &["slurm"]).await);
    runner.expect_line("Listening for Jobs").await;
    runner.signal("-TERM");
    let (code, _) = runner.wait().await;
    assert_eq!(code, 0);
    let status = runner_status(&emulator, "r1").await.unwrap();
    assert_eq!(status, ("offline".to_string(), false));
}

#[tokio::test]
async fn sigterm_during_a_job_cancels_it() {
    let emulator = emulator().await;
    let run_id = one_job_run(&emulator, "soak", &["slurm"], vec![Step::Hang]);
    let mut runner = FakeRunner::start(&jit_config(&emulator, "r1", &["slurm"]).await);
    runner.expect_line("Running job: soak").await;
    runner.signal("-TERM");
    runner
        .expect_line("Job soak completed with result: Canceled")
        .await;
    assert_eq!(runner.wait().await.0, 0);
    assert_eq!(
        wait_run(&emulator, run_id).await,
        Some(Conclusion::Cancelled)
    );
}

#[tokio::test]
async fn sigint_while_idle_prints_exiting_as_the_real_ctrl_c_handler() {
    let emulator = emulator().await;
    let mut runner = FakeRunner::start(&jit_config(&emulator, "r1", &["slurm"]).await);
    runner.expect_line("Listening for Jobs").await;
    runner.signal("-INT");
    runner.expect_line("Exiting...").await;
    assert_eq!(runner.wait().await.0, 0);
}

#[tokio::test]
async fn a_runner_registered_with_a_registration_token_gets_the_default_labels() {
    let emulator = emulator().await;
    let token: Value = reqwest::Client::new()
        .post(format!(
            "{}/repos/{REPO}/actions/runners/registration-token",
            emulator.url()
        ))
        .bearer_auth(emulator.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap();
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new(
                "CI",
                vec![JobSpec::new("build", &["self-hosted", "linux", "slurm"])],
            ),
        )
        .unwrap();
    let mut runner = FakeRunner::register(
        &format!("{}/_runner", emulator.url()),
        token,
        "reg-1",
        "slurm",
    );
    runner
        .expect_line("Job build completed with result: Succeeded")
        .await;
    assert_eq!(runner.wait().await.0, 0);
    assert_eq!(wait_run(&emulator, run_id).await, Some(Conclusion::Success));
}
