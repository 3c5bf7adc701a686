//! GitHub over TLS against the emulator's HTTPS: a server whose CA is
//! trusted answers; one signed by another CA is refused with an error that
//! says it was the certificate.

use gha_github::{Endpoint, Fetched, GitHubClient, GitHubError, TlsRoots, TransportError};
use gha_testkit::github::GitHubEmulator;
use gha_testkit::tls::TestCa;

fn client(emulator: &GitHubEmulator, ca_pem: &str) -> GitHubClient {
    let roots = TlsRoots::with_ca_pem(ca_pem.as_bytes()).unwrap();
    let endpoint = Endpoint::new(&emulator.url(), &roots).unwrap();
    GitHubClient::new(&endpoint, emulator.token().to_string().into())
}

#[tokio::test]
async fn the_emulators_https_is_trusted_with_its_ca() {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo("acme/widgets");
    assert!(emulator.url().starts_with("https://"));
    let client = client(&emulator, emulator.ca().cert_pem());
    let runs = client
        .get::<serde_json::Value>("/repos/acme/widgets/actions/runs", None)
        .await
        .unwrap();
    assert!(matches!(runs, Fetched::Fresh { .. }));
    assert_eq!(emulator.requests().len(), 1);
}

#[tokio::test]
async fn a_server_certificate_of_another_ca_is_refused_with_a_clear_error() {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo("acme/widgets");
    let other = TestCa::new("not the emulator's").unwrap();
    let err = client(&emulator, other.cert_pem())
        .get::<serde_json::Value>("/repos/acme/widgets/actions/runs", None)
        .await
        .unwrap_err();
    let GitHubError::Transport {
        failure: TransportError::Tls { host, reason },
        ..
    } = &err
    else {
        panic!("not a TLS refusal: {err:?}")
    };
    assert_eq!(host, "127.0.0.1");
    assert!(reason.contains("certificate"), "{reason}");
    assert!(err.to_string().contains("TLS handshake"), "{err}");
    assert_eq!(err.metric_label(), "tls");
    assert!(
        emulator.requests().is_empty(),
        "nothing was sent over the refused connection"
    );
}

#[tokio::test]
async fn plain_http_still_works_for_an_http_url() {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo("acme/widgets");
    let endpoint = Endpoint::new(
        &emulator.url(),
        &TlsRoots::with_ca_pem(emulator.ca().cert_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let client = GitHubClient::new(&endpoint, emulator.token().to_string().into());
    client
        .get::<serde_json::Value>("/repos/acme/widgets/actions/runs", None)
        .await
        .unwrap();
}
