//! `gha-poller` on the command line: it answers for itself, refuses bad
//! flags with 64 and what it cannot do yet with 69, and `poll-once` shows
//! what a pass against GitHub finds.

use gha_testkit::cli::{assert_config_error, assert_help_and_version, run};
use gha_testkit::github::{
    EmulatorConfig, GitHubEmulator, JobSpec, RateLimitSettings, WorkflowSpec,
};
use serde_json::Value;

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_gha-poller");

fn token_file(token: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{token}\n")).unwrap();
    file
}

/// Runs `gha-poller poll-once --json` against the emulator over HTTPS
/// (trusting its CA) with ARGS, off the runtime (the emulator keeps
/// serving), and parses its JSON lines.
async fn poll_once_json(emulator: &GitHubEmulator, args: Vec<String>) -> Vec<Value> {
    let output = poll_once(emulator, args).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `gha-poller poll-once --json --github-api-url URL --github-ca-file CA
/// ARGS...`.
async fn poll_once(emulator: &GitHubEmulator, args: Vec<String>) -> std::process::Output {
    let url = emulator.url();
    let ca = emulator.ca().cert_file().display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut all = vec!["poll-once", "--json", "--github-api-url", &url];
        all.extend(["--github-ca-file", &ca]);
        all.extend(args.iter().map(String::as_str));
        run(BIN, &all)
    })
    .await
    .unwrap()
}

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-poller", &["run", "poll-once"]);
}

#[test]
fn bad_flags_are_config_errors_naming_the_flag() {
    let token = token_file("ghp_x");
    let token = token.path().to_str().unwrap();
    assert_config_error(
        BIN,
        &[
            "run",
            "--token-file",
            token,
            "--repos",
            "a/b",
            "--nats-url",
            "nats://x:port",
        ],
        "--nats-url",
    );
    assert_config_error(
        BIN,
        &["poll-once", "--repos", "a/b"],
        "no GitHub credentials",
    );
    assert_config_error(
        BIN,
        &["poll-once", "--token-file", token],
        "nothing to watch",
    );
    assert_config_error(
        BIN,
        &[
            "poll-once",
            "--app-id",
            "1",
            "--app-key-file",
            token,
            "--installation-id",
            "2",
            "--installation-repos",
        ],
        "not an RSA private key",
    );
    assert_config_error(
        BIN,
        &["poll-once", "--token-file", token, "--installation-repos"],
        "--app-id",
    );
    assert_config_error(
        BIN,
        &["poll-once", "--token-file", token, "--repos", "nope"],
        "owner/name",
    );
    assert_config_error(
        BIN,
        &[
            "run",
            "--token-file",
            token,
            "--repos",
            "a/b",
            "--webhook-listen",
            "127.0.0.1:0",
        ],
        "--webhook-secret-file",
    );
}

#[tokio::test]
async fn poll_once_prints_each_queued_job_as_json_and_publishes_nothing() {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo("acme/widgets");
    emulator.add_repo("acme/gadgets");
    emulator
        .create_run(
            "acme/widgets",
            WorkflowSpec::fan_out("matrix", 3, &["self-hosted", "slurm"], vec![]),
        )
        .unwrap();
    emulator
        .create_run(
            "acme/gadgets",
            WorkflowSpec::new("CI", vec![JobSpec::new("hosted", &["ubuntu-latest"])]),
        )
        .unwrap();
    let token = token_file(emulator.token());
    let args = vec![
        "--token-file".to_string(),
        token.path().to_str().unwrap().to_string(),
        "--org".to_string(),
        "acme".to_string(),
    ];
    let jobs = poll_once_json(&emulator, args).await;
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    for job in &jobs {
        assert_eq!(job["repository"], "acme/widgets");
        assert_eq!(job["labels"], serde_json::json!(["self-hosted", "slurm"]));
        assert_eq!(job["source"], "poll");
        assert_eq!(job["run_attempt"], 1);
    }
}

const APP_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/github-app-test-key.pem"
);
const APP_PUBLIC_KEY: &[u8] = include_bytes!("../../tests/fixtures/github-app-test-key.pub.pem");

#[tokio::test]
async fn poll_once_as_a_github_app_watches_its_installations_repositories() {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo("acme/widgets");
    emulator.add_repo("acme/private");
    emulator.register_app(4242, APP_PUBLIC_KEY).unwrap();
    let installation = emulator.add_installation(4242, "acme", &["acme/widgets"]);
    for repo in ["acme/widgets", "acme/private"] {
        emulator
            .create_run(
                repo,
                WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
            )
            .unwrap();
    }
    let args = [
        "--app-id",
        "4242",
        "--app-key-file",
        APP_KEY,
        "--installation-id",
        &installation.to_string(),
        "--installation-repos",
    ];
    let jobs = poll_once_json(&emulator, args.map(str::to_string).to_vec()).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["repository"], "acme/widgets");
    assert_eq!(jobs[0]["installation_id"], installation);
    let minted = emulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/access_tokens") && r.status == 201)
        .count();
    assert_eq!(minted, 1, "one installation token for the whole pass");
}

#[tokio::test]
async fn poll_once_refuses_a_github_whose_certificate_the_ca_file_does_not_vouch_for() {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo("acme/widgets");
    let token = token_file(emulator.token());
    let other = gha_testkit::tls::TestCa::new("another").unwrap();
    let (url, ca) = (emulator.url(), other.cert_file().display().to_string());
    let token = token.path().display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        run(
            BIN,
            &[
                "poll-once",
                "--github-api-url",
                &url,
                "--github-ca-file",
                &ca,
                "--token-file",
                &token,
                "--repos",
                "acme/widgets",
            ],
        )
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS handshake with 127.0.0.1 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("certificate"), "{stderr}");
}

#[test]
fn an_unreadable_or_non_pem_ca_file_is_a_config_error() {
    let token = token_file("ghp_x");
    let token = token.path().to_str().unwrap();
    let not_pem = token_file("not a certificate");
    for (ca, says) in [
        ("/nonexistent/ca.pem", "/nonexistent/ca.pem"),
        (not_pem.path().to_str().unwrap(), "no PEM certificate"),
    ] {
        assert_config_error(
            BIN,
            &[
                "poll-once",
                "--token-file",
                token,
                "--repos",
                "a/b",
                "--github-ca-file",
                ca,
            ],
            says,
        );
    }
}

#[tokio::test]
async fn poll_once_waits_for_a_secondary_limits_retry_after_and_finishes() {
    let emulator = GitHubEmulator::start_with(EmulatorConfig {
        rate_limits: RateLimitSettings {
            retry_after: std::time::Duration::from_secs(2),
            ..RateLimitSettings::default()
        },
        https: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator.add_repo("acme/widgets");
    emulator
        .create_run(
            "acme/widgets",
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
        )
        .unwrap();
    emulator.secondary_limit_storm(1);
    let token = token_file(emulator.token());
    let args = vec![
        "--token-file".to_string(),
        token.path().to_str().unwrap().to_string(),
        "--repos".to_string(),
        "acme/widgets".to_string(),
    ];
    let jobs = poll_once_json(&emulator, args).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let requests = emulator.requests();
    assert_eq!(requests[0].status, 403);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= chrono::Duration::seconds(2),
        "sent again after {gap:?}"
    );
}
