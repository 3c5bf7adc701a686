//! Installation tokens are minted with the app's JWT and replaced before
//! they expire.

use std::time::Duration;

use gha_github::{AppCredentials, Auth, Fetched, GitHubClient};
use gha_testkit::github::GitHubEmulator;
use secrecy::ExposeSecret;
use std::sync::Arc;

/// The emulator's API over HTTPS, trusting its CA.
fn endpoint(emulator: &GitHubEmulator) -> gha_github::Endpoint {
    let roots = gha_github::TlsRoots::with_ca_pem(emulator.ca().cert_pem().as_bytes()).unwrap();
    gha_github::Endpoint::new(&emulator.url(), &roots).unwrap()
}

const PRIVATE_KEY: &[u8] = include_bytes!("../../tests/fixtures/github-app-test-key.pem");
const PUBLIC_KEY: &[u8] = include_bytes!("../../tests/fixtures/github-app-test-key.pub.pem");

async fn emulator_with_app() -> (GitHubEmulator, u64) {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo("acme/widgets");
    emulator.register_app(7, PUBLIC_KEY).unwrap();
    let installation = emulator.add_installation(7, "acme", &["acme/widgets"]);
    (emulator, installation)
}

fn minted(emulator: &GitHubEmulator) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/access_tokens") && r.status == 201)
        .count()
}

#[tokio::test]
async fn a_token_is_reused_while_fresh_and_replaced_when_near_expiry() {
    let (emulator, installation) = emulator_with_app().await;
    let fresh = AppCredentials::new(&endpoint(&emulator), 7, PRIVATE_KEY).unwrap();
    let first = fresh.installation_token(installation).await.unwrap();
    let again = fresh.installation_token(installation).await.unwrap();
    assert_eq!(first.expose_secret(), again.expose_secret());
    assert_eq!(minted(&emulator), 1);

    // A margin longer than the token's hour: every token is "near expiry".
    let eager = AppCredentials::new(&endpoint(&emulator), 7, PRIVATE_KEY)
        .unwrap()
        .refresh_before(Duration::from_secs(2 * 3600));
    let one = eager.installation_token(installation).await.unwrap();
    let two = eager.installation_token(installation).await.unwrap();
    assert_ne!(one.expose_secret(), two.expose_secret());
    assert_eq!(minted(&emulator), 3);
}

#[tokio::test]
async fn an_installation_client_reads_with_its_token_and_keeps_working_across_refreshes() {
    let (emulator, installation) = emulator_with_app().await;
    let app = Arc::new(
        AppCredentials::new(&endpoint(&emulator), 7, PRIVATE_KEY)
            .unwrap()
            .refresh_before(Duration::from_secs(2 * 3600)),
    );
    let client = GitHubClient::with_auth(
        &endpoint(&emulator),
        Auth::Installation { app, installation },
    );
    for _ in 0..3 {
        let runs = client
            .get::<serde_json::Value>("/repos/acme/widgets/actions/runs", None)
            .await
            .unwrap();
        assert!(matches!(runs, Fetched::Fresh { .. }));
    }
    assert_eq!(minted(&emulator), 3, "a new token each time, each accepted");
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_github() {
    let (emulator, installation) = emulator_with_app().await;
    let other_app = AppCredentials::new(&endpoint(&emulator), 8, PRIVATE_KEY).unwrap();
    let err = other_app
        .installation_token(installation)
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "unauthorized");
}
