//! The `fake-runner` listener through `run.sh`, against the emulator, as the
//! real runner is started: JIT config only in the environment, registration
//! files written next to its real `bin/`, job hooks with the job's
//! `GITHUB_*`, and a read-only root failing as the real one does.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use gha_testkit::fake_runner::layout;
use gha_testkit::github::{GitHubEmulator, JobSpec, Step, WorkflowSpec};
use serde_json::{Value, json};

const REPO: &str = "acme/widgets";

async fn jit_config(emulator: &GitHubEmulator, name: &str) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!(
            "{}/repos/{REPO}/actions/runners/generate-jitconfig",
            emulator.url()
        ))
        .bearer_auth(emulator.token())
        .json(&json!({"name": name, "runner_group_id": 1, "labels": ["slurm"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["encoded_jit_config"].as_str().unwrap().to_string()
}

fn install(root: &Path) {
    layout::install(root, env!("CARGO_BIN_EXE_fake-runner").as_ref()).unwrap();
}

/// `run.sh` in `root`, blocking, on a thread of its own.
async fn run_sh(root: &Path, envs: Vec<(String, String)>) -> Output {
    let mut command = Command::new(root.join("run.sh"));
    command
        .current_dir(root)
        .env("RUNNER_ALLOW_RUNASROOT", "1")
        .env_remove("RUNNER_MANUALLY_TRAP_SIG")
        .envs(envs)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn run_sh_takes_a_job_with_the_jit_config_from_the_environment_only() {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo(REPO);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runner");
    install(&root);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let started = out.join("started.sh");
    std::fs::write(&started, format!("env > '{}/hook.env'\n", out.display())).unwrap();
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new(
                "CI",
                vec![
                    JobSpec::new("Build (linux)", &["slurm"])
                        .key("build")
                        .steps(vec![Step::Run {
                            command: format!("env > '{}/step.env'", out.display()),
                        }]),
                ],
            ),
        )
        .unwrap();
    let config = jit_config(&emulator, "gha-node1-7").await;

    let output = run_sh(
        &root,
        vec![
            ("ACTIONS_RUNNER_INPUT_JITCONFIG".into(), config.clone()),
            (
                "ACTIONS_RUNNER_HOOK_JOB_STARTED".into(),
                started.display().to_string(),
            ),
        ],
    )
    .await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let events: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.get(22..).filter(|_| line.get(19..22) == Some("Z: ")))
        .collect();
    assert_eq!(
        events,
        [
            "Listening for Jobs",
            "Running job: Build (linux)",
            "Job Build (linux) completed with result: Succeeded"
        ],
        "{stdout}"
    );
    assert!(stdout.ends_with("Exiting runner...\n"), "{stdout}");
    assert!(!stdout.contains(&config) && !stderr.contains(&config));
    for file in [
        ".runner",
        ".credentials",
        ".credentials_rsaparams",
        "run-helper.sh",
    ] {
        assert!(root.join(file).is_file(), "{file}");
    }
    let diag: Vec<_> = std::fs::read_dir(root.join("_diag"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("Runner_") && name.ends_with("-utc.log"))
        .collect();
    assert_eq!(diag.len(), 1, "{diag:?}");
    for env_file in ["hook.env", "step.env"] {
        let env = std::fs::read_to_string(out.join(env_file)).unwrap();
        assert!(!env.contains("ACTIONS_RUNNER_INPUT"), "{env_file}:\n{env}");
        assert!(!env.contains(&config), "{env_file} holds the JIT config");
        assert!(
            env.lines().any(|l| l == "GITHUB_JOB=build"),
            "{env_file}:\n{env}"
        );
        assert!(
            env.lines().any(|l| l == "GITHUB_RUN_ATTEMPT=1"),
            "{env_file}"
        );
        let run = format!("GITHUB_RUN_ID={run_id}");
        assert!(env.lines().any(|l| l == run), "{env_file}");
    }
}

/// `command` run by `sh -c` inside bwrap with the host read-only (and
/// `writable` bound read-write), as uid 1001; its output.
fn in_bwrap(writable: Option<&Path>, command: &str) -> Output {
    let mut bwrap = Command::new("bwrap");
    bwrap
        .args(["--unshare-user", "--uid", "1001", "--gid", "1001"])
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
    if let Some(dir) = writable {
        let dir = dir.to_str().unwrap();
        bwrap.args(["--bind", dir, dir]);
    }
    bwrap
        .args(["--die-with-parent", "--", "sh", "-c", command])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn on_a_read_only_root_the_listener_dies_of_an_unhandled_exception_at_diag() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runner");
    install(&root);
    let output = in_bwrap(
        None,
        &format!(
            "ACTIONS_RUNNER_INPUT_JITCONFIG=x '{}' run; echo \"exit=$?\"",
            root.join(layout::LISTENER).display()
        ),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "Unhandled exception. System.IO.IOException: Read-only file system : '{}/_diag'",
        std::fs::canonicalize(&root).unwrap().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stdout.contains("exit=134"),
        "SIGABRT, as .NET's abort: {stdout}"
    );
    assert!(!root.join(".runner").exists());
}

#[test]
fn a_symlinked_listener_writes_into_the_real_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runner");
    install(&root);
    let farm = dir.path().join("farm");
    std::fs::create_dir_all(farm.join("bin")).unwrap();
    std::os::unix::fs::symlink(root.join(layout::LISTENER), farm.join(layout::LISTENER)).unwrap();
    // Not configured: it exits 1 after making _diag/, which shows where.
    let output = Command::new(farm.join(layout::LISTENER))
        .arg("run")
        .env_remove("ACTIONS_RUNNER_INPUT_JITCONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Runner is not configured."), "{stderr}");
    assert!(root.join("_diag").is_dir());
    assert!(
        !farm.join("_diag").exists(),
        "the listener took the link's root"
    );
}

#[test]
fn in_bwrap_a_writable_root_gets_past_the_files_and_a_read_only_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("runner");
    install(&root);
    // A JIT config whose server is a closed port: the listener gets past
    // its files and fails only when it connects.
    let config = gha_testkit::github::runner_api::JitConfig {
        runner: gha_testkit::github::runner_api::RunnerFile {
            agent_id: 1,
            agent_name: "r".into(),
            pool_id: 1,
            pool_name: "Default".into(),
            server_url: "http://127.0.0.1:1/_runner".into(),
            git_hub_url: "http://127.0.0.1:1/acme/widgets".into(),
            work_folder: "_work".into(),
            ephemeral: true,
            disable_update: true,
        },
        credentials: gha_testkit::github::runner_api::CredentialsFile {
            scheme: "OAuthAccessToken".into(),
            data: gha_testkit::github::runner_api::CredentialsData {
                client_id: "c".into(),
                authorization_url: "http://127.0.0.1:1/_runner/token".into(),
                token: "t".into(),
            },
        },
    }
    .encode();
    let script = format!(
        "ACTIONS_RUNNER_INPUT_JITCONFIG='{config}' '{}/run.sh'; echo \"exit=$?\"",
        root.display()
    );
    let read_only = in_bwrap(None, &script);
    assert!(!root.join(".runner").exists());
    assert!(
        String::from_utf8_lossy(&read_only.stderr).contains("Read-only file system"),
        "{read_only:?}"
    );
    let writable = in_bwrap(Some(&root), &script);
    let stderr = String::from_utf8_lossy(&writable.stderr);
    assert!(root.join(".runner").is_file(), "{stderr}");
    assert!(root.join("_work").is_dir(), "{stderr}");
    assert!(stderr.contains("connecting: gave up after"), "{stderr}");
    assert!(String::from_utf8_lossy(&writable.stdout).contains("exit=0"));
}
