//! The `gha-poller run` binary's `/metrics` is what `docs/metrics.md` says,
//! both ways, and its gauges read what happened: a poll pass against the
//! emulator, the token's budget, the NATS connection.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gha_testkit::github::GitHubEmulator;
use gha_testkit::metrics_doc::{assert_documented, free_loopback_addr, sample_value, scrape};
use gha_testkit::{NatsServer, eventually};

const REPO: &str = "acme/widgets";

/// The poller process, killed when the test ends, failing or not.
struct Poller(Child);

impl Drop for Poller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn metrics_are_documented_and_report_a_poll_pass() {
    let nats = NatsServer::start().unwrap();
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo(REPO);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, emulator.token()).unwrap();
    let secret = dir.path().join("webhook-secret");
    std::fs::write(&secret, "a webhook secret\n").unwrap();
    let admin = free_loopback_addr();
    let webhook = free_loopback_addr();
    let _poller = Poller(
        Command::new(env!("CARGO_BIN_EXE_gha-poller"))
            .arg("run")
            .args(["--github-api-url", &emulator.url()])
            .arg("--token-file")
            .arg(&token)
            .args(["--repos", REPO, "--nats-url", &nats.url()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--webhook-listen", &webhook.to_string()])
            .arg("--webhook-secret-file")
            .arg(&secret)
            .args(["--poll-interval", "1", "--busy-poll-interval", "1"])
            .env_remove("GHA_GITHUB_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gha-poller starts"),
    );

    let text = scrape(admin, Duration::from_secs(30)).await;
    assert_documented("gha-poller", &text);

    let text = eventually(
        "a poll pass, the budget, NATS",
        Duration::from_secs(30),
        || async {
            let text = scrape(admin, Duration::from_secs(5)).await;
            let passed =
                sample_value(&text, "gha_poller_poll_passes_total{outcome=\"ok\"}")? >= 1.0;
            let budget = sample_value(&text, "gha_poller_rate_limit_remaining")? > 0.0;
            let connected = sample_value(&text, "gha_poller_nats_connected")? == 1.0;
            (passed && budget && connected).then_some(text)
        },
    )
    .await
    .expect("the poller reports its work");
    assert!(
        sample_value(&text, "gha_poller_github_requests_total").unwrap() >= 1.0,
        "{text}"
    );
    assert_documented("gha-poller", &text);
}
