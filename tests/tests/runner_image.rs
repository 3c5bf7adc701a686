//! The runner image as the launcher gets it (`RunnerImage::shared()`: built
//! by `deploy/local/runner-image`, pushed to a registry, unpacked by
//! `gha-unpacker --apptainer`), and the fake runner started from it with
//! bwrap: on the image's read-only root it fails as the real runner does;
//! given a writable root (the work dir bound at /home/runner, the image's
//! `bin/` bound read-only into it: nothing copied but three small scripts)
//! it takes and completes a job from the emulator.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use gha_testkit::github::{Conclusion, GitHubEmulator, JobSpec, JobStatus, Step, WorkflowSpec};
use gha_testkit::runner_image::{RUNNER_HOME, RUNNER_UID, RunnerImage};
use serde_json::{Value, json};

const REPO: &str = "acme/widgets";

fn image() -> &'static RunnerImage {
    RunnerImage::shared().expect("the runner image")
}

#[test]
fn the_unpacked_image_holds_the_runner_laid_out_as_the_real_one() {
    let image = image();
    let root = image.runner_root();
    for file in [
        "run.sh",
        "run-helper.sh.template",
        "safe_sleep.sh",
        "bin/Runner.Listener",
    ] {
        let meta = std::fs::metadata(root.join(file)).unwrap_or_else(|_| panic!("{file}"));
        assert_eq!(meta.uid(), RUNNER_UID, "{file} is the runner's");
        assert_eq!(meta.mode() & 0o111, 0o111, "{file} is executable");
    }
    let passwd = std::fs::read_to_string(image.rootfs().join("etc/passwd")).unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("runner:x:1001:1001:")),
        "{passwd}"
    );
    let env = std::fs::read_to_string(
        image
            .rootfs()
            .join(".singularity.d/env/10-docker2singularity.sh"),
    )
    .unwrap();
    assert!(env.contains("RUNNER_MANUALLY_TRAP_SIG='1'"), "{env}");
}

async fn jit_config(emulator: &GitHubEmulator) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!(
            "{}/repos/{REPO}/actions/runners/generate-jitconfig",
            emulator.url()
        ))
        .bearer_auth(emulator.token())
        .json(&json!({"name": "gha-node1-1", "runner_group_id": 1, "labels": ["slurm"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["encoded_jit_config"].as_str().unwrap().to_string()
}

/// `run.sh` from the image as uid 1001 in new user and pid namespaces,
/// the image read-only at `/`; `writable` bound at `/home/runner` with the
/// image's `bin/` read-only inside. The JIT config goes through bwrap's
/// environment, never its argv.
async fn run_from_image(writable: Option<&Path>, jitconfig: &str) -> Output {
    let rootfs = image().rootfs().to_str().unwrap().to_owned();
    let mut bwrap = Command::new("bwrap");
    bwrap
        .args([
            "--unshare-user",
            "--unshare-pid",
            "--uid",
            "1001",
            "--gid",
            "1001",
        ])
        .args([
            "--ro-bind",
            &rootfs,
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
        ])
        .args(["--tmpfs", "/tmp", "--die-with-parent"]);
    if let Some(dir) = writable {
        let bin = format!("{rootfs}{RUNNER_HOME}/bin");
        bwrap
            .args(["--bind", dir.to_str().unwrap(), RUNNER_HOME])
            .args(["--ro-bind", &bin, &format!("{RUNNER_HOME}/bin")]);
    }
    bwrap
        .args([
            "--chdir",
            RUNNER_HOME,
            "--",
            &format!("{RUNNER_HOME}/run.sh"),
        ])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("RUNNER_MANUALLY_TRAP_SIG", "1")
        .env("ACTIONS_RUNNER_INPUT_JITCONFIG", jitconfig)
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || bwrap.output().unwrap())
        .await
        .unwrap()
}

/// A writable runner root for one job: the image's top-level files copied
/// (a few KB), a mount point for `bin/`.
fn writable_root(dir: &Path) {
    let image_root = image().runner_root();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    for entry in std::fs::read_dir(&image_root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
}

#[tokio::test]
async fn from_the_read_only_image_the_runner_fails_and_from_a_writable_root_it_takes_a_job() {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo(REPO);
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new(
                "CI",
                vec![JobSpec::new("build", &["slurm"]).steps(vec![Step::Run {
                    command: "test \"$(id -u)\" = 1001 && test -w \"$GITHUB_WORKSPACE\"".into(),
                }])],
            ),
        )
        .unwrap();
    let config = jit_config(&emulator).await;

    let read_only = run_from_image(None, &config).await;
    let stdout = String::from_utf8_lossy(&read_only.stdout);
    let stderr = String::from_utf8_lossy(&read_only.stderr);
    assert!(
        stderr.contains(
            "cp: cannot create regular file '/home/runner/run-helper.sh': Read-only file system"
        ),
        "{stderr}"
    );
    assert!(!stdout.contains("Listening for Jobs"), "{stdout}");
    // With RUNNER_MANUALLY_TRAP_SIG (the image's ENV), run.sh exits with the
    // helper's status: 127, the shell's "command not found".
    assert_eq!(read_only.status.code(), Some(127), "{stdout}");
    assert_eq!(emulator.run_status(run_id).0, JobStatus::Queued);

    let dir = tempfile::tempdir().unwrap();
    writable_root(dir.path());
    let writable = run_from_image(Some(dir.path()), &config).await;
    let stdout = String::from_utf8_lossy(&writable.stdout);
    let stderr = String::from_utf8_lossy(&writable.stderr);
    assert_eq!(writable.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Job build completed with result: Succeeded"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        emulator.run_status(run_id),
        (JobStatus::Completed, Some(Conclusion::Success))
    );
    for file in [".runner", ".credentials", "run-helper.sh", "_diag", "_work"] {
        assert!(
            dir.path().join(file).exists(),
            "{file} not in the writable root"
        );
    }
    assert!(
        std::fs::read_dir(dir.path().join("bin"))
            .unwrap()
            .next()
            .is_none(),
        "bin/ was only a mount point"
    );
}
