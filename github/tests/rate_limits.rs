//! Limits GitHub announces hold every request back before it is sent,
//! against the emulator's rate limits: a spent primary budget until its
//! reset, a secondary limit for its `retry-after`, and a secondary limit
//! GitHub sent without `retry-after` for a back-off of our own.

use std::time::Duration;

use gha_github::{Endpoint, Fetched, GitHubClient, GitHubError, TlsRoots};
use gha_testkit::github::{EmulatorConfig, GitHubEmulator, RateLimitSettings};

const RUNS: &str = "/repos/acme/widgets/actions/runs";

async fn emulator(rate_limits: RateLimitSettings) -> GitHubEmulator {
    let emulator = GitHubEmulator::start_with(EmulatorConfig {
        rate_limits,
        https: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator.add_repo("acme/widgets");
    emulator
}

fn client(emulator: &GitHubEmulator) -> GitHubClient {
    let roots = TlsRoots::with_ca_pem(emulator.ca().cert_pem().as_bytes()).unwrap();
    let endpoint = Endpoint::new(&emulator.url(), &roots).unwrap();
    GitHubClient::new(&endpoint, emulator.token().to_string().into())
}

#[tokio::test]
async fn a_secondary_limit_without_retry_after_holds_every_request_back() {
    let emulator = emulator(RateLimitSettings {
        send_retry_after: false,
        ..RateLimitSettings::default()
    })
    .await;
    emulator.secondary_limit_storm(1);
    let client = client(&emulator);
    let err = client
        .get::<serde_json::Value>(RUNS, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GitHubError::SecondaryLimited { retry_after } if retry_after == Duration::from_secs(60)),
        "GitHub's minute: {err:?}"
    );
    // The next request is not sent at all while the back-off runs.
    let again = client
        .get::<serde_json::Value>(RUNS, None)
        .await
        .unwrap_err();
    assert!(
        matches!(again, GitHubError::SecondaryLimited { .. }),
        "{again:?}"
    );
    assert_eq!(emulator.requests().len(), 1, "held back, not sent");
}

#[tokio::test]
async fn a_client_that_may_wait_sends_again_only_after_the_back_off() {
    let emulator = emulator(RateLimitSettings {
        send_retry_after: false,
        ..RateLimitSettings::default()
    })
    .await;
    emulator.secondary_limit_storm(1);
    let client = client(&emulator)
        .with_secondary_backoff(Duration::from_secs(1))
        .waiting_for_limits(Duration::from_secs(10));
    let runs = client.get::<serde_json::Value>(RUNS, None).await.unwrap();
    assert!(matches!(runs, Fetched::Fresh { .. }));
    let requests = emulator.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [403, 200]
    );
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= chrono::Duration::seconds(1),
        "sent again after {gap:?}"
    );
}

#[tokio::test]
async fn a_spent_primary_budget_holds_requests_until_its_reset() {
    let emulator = emulator(RateLimitSettings {
        primary_limit: 2,
        ..RateLimitSettings::default()
    })
    .await;
    let client = client(&emulator);
    for _ in 0..2 {
        client.get::<serde_json::Value>(RUNS, None).await.unwrap();
    }
    assert_eq!(client.budget().unwrap().remaining, 0);
    let err = client
        .get::<serde_json::Value>(RUNS, None)
        .await
        .unwrap_err();
    assert!(matches!(err, GitHubError::RateLimited { .. }), "{err:?}");
    assert_eq!(
        emulator.requests().len(),
        2,
        "the spent budget was not spent further (no refused request)"
    );
}
