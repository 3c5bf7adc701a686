//! No secret of the scheduler's — the GitHub App key, the installation
//! token, a JIT config, a claim — shows in its logs, in `ps`, or in
//! `scontrol show job`.

mod support;

use gha_testkit::paths::repo_root;
use support::{Harness, Options};

const APP_ID: u64 = 4242;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_in_no_log_no_argv_and_no_slurm_record() {
    let harness = Harness::start(Options {
        launcher_mode: "claim-hold",
        in_process: false,
        ..Options::default()
    })
    .await;
    let fixtures = repo_root().join("tests/fixtures");
    let public = std::fs::read(fixtures.join("github-app-test-key.pub.pem")).unwrap();
    harness.emulator.register_app(APP_ID, &public).unwrap();
    let installation = harness
        .emulator
        .add_installation(APP_ID, "org", &[support::REPO]);
    let key_file = fixtures.join("github-app-test-key.pem");
    let auth = [
        "--github-app-id".to_owned(),
        APP_ID.to_string(),
        "--github-app-key-file".to_owned(),
        key_file.display().to_string(),
        "--github-installation-id".to_owned(),
        installation.to_string(),
    ];
    let mut scheduler = harness.spawn_binary_with(None, &auth);
    for job_id in [1, 2] {
        harness.publish(&harness.job(job_id)).await;
    }
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut slurm_ids = Vec::new();
    for job_id in [1, 2] {
        let state = harness.wait_submitted(job_id).await;
        let report = harness.wait_report(state.slurm_job_id).await;
        assert_eq!(report["got_config"], true, "{report}");
        secrets.push(("claim".into(), report["claim"].as_str().unwrap().into()));
        secrets.push((
            "JIT config".into(),
            report["jit_config"].as_str().unwrap().into(),
        ));
        slurm_ids.push(state.slurm_job_id);
    }
    for record in harness.emulator.requests() {
        if let Some(token) = record.token {
            secrets.push(("GitHub token".into(), token));
        }
    }
    let key = std::fs::read_to_string(&key_file).unwrap();
    for line in key.lines().filter(|line| line.len() > 40).take(3) {
        secrets.push(("App key".into(), line.to_owned()));
    }
    assert!(secrets.iter().any(|(what, _)| what == "GitHub token"));
    for (_, value) in &secrets {
        assert!(value.len() >= 32, "a real secret to look for: {value:?}");
    }

    // While the launchers hold: every process's argv.
    let ps = String::from_utf8(
        std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut scontrol = String::new();
    for id in &slurm_ids {
        let output = harness
            .slurm
            .command("scontrol")
            .args(["show", "job", "-dd", &id.to_string()])
            .output()
            .unwrap();
        scontrol.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    assert!(scontrol.contains("JobName="), "{scontrol}");
    scheduler.kill().unwrap();
    scheduler.wait().unwrap();
    let logs = harness.binary_logs();
    assert!(logs.contains("JIT config minted"), "{logs}");

    for (what, value) in &secrets {
        for (place, text) in [
            ("ps", &ps),
            ("scontrol show job", &scontrol),
            ("scheduler log", &logs),
        ] {
            assert!(
                !text.contains(value.as_str()),
                "the {what} shows in {place}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_fixed_installation_each_job_registers_through_its_own() {
    let harness = Harness::start(Options {
        launcher_mode: "claim-hold",
        in_process: false,
        ..Options::default()
    })
    .await;
    harness.emulator.add_repo("other/tools");
    let fixtures = repo_root().join("tests/fixtures");
    let public = std::fs::read(fixtures.join("github-app-test-key.pub.pem")).unwrap();
    harness.emulator.register_app(APP_ID, &public).unwrap();
    let first = harness
        .emulator
        .add_installation(APP_ID, "org", &[support::REPO]);
    let second = harness
        .emulator
        .add_installation(APP_ID, "other", &["other/tools"]);
    let auth = [
        "--github-app-id".to_owned(),
        APP_ID.to_string(),
        "--github-app-key-file".to_owned(),
        fixtures
            .join("github-app-test-key.pem")
            .display()
            .to_string(),
    ];
    let _scheduler = harness.spawn_binary_with(None, &auth);
    let mut job = harness.job_in(support::REPO, 1);
    job.installation_id = first as i64;
    harness.publish(&job).await;
    let mut other = harness.job_in("other/tools", 2);
    other.installation_id = second as i64;
    harness.publish(&other).await;
    // Each installation sees only its own repository: both succeed only if
    // each job went through its own.
    for job_id in [1, 2] {
        let state = harness.wait_submitted(job_id).await;
        let report = harness.wait_report(state.slurm_job_id).await;
        assert_eq!(report["got_config"], true, "job {job_id}: {report}");
    }
}
