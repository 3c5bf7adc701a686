//! `serve` over NATS (a real nats-server): `UnpackRequest` ->
//! `UnpackResult`, a redelivery answered from the record, and the `request`
//! command over NATS and HTTP.

mod service;
mod support;

use std::path::Path;

use futures::StreamExt;
use gha_proto::consumer::Decode;
use gha_proto::v1::{UnpackRequest, UnpackResult, UnpackStatus};
use gha_proto::{Contract, Envelope, subjects};
use gha_testkit::NatsServer;
use service::*;
use support::Corrupt;

#[tokio::test]
async fn nats_requests_get_results_and_the_request_command_prints_the_path() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "viaNats", 1024, Corrupt::Nothing);
    let mut setup = Setup::dir(dir.path());
    setup.nats = Some(nats.url());
    let service = setup.start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let contract = Contract::new(client.clone());
    // The stream may not exist yet: the service creates it when it connects.
    contract.ensure_topology().await.unwrap();
    let mut results = client
        .subscribe(subjects::unpack_result("req-1"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    contract
        .publish(&UnpackRequest {
            request_id: "req-1".into(),
            source: source.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let message = tokio::time::timeout(DEADLINE, results.next())
        .await
        .unwrap()
        .unwrap();
    let result = UnpackResult::decode_from(&message.subject, message.payload).unwrap();
    assert_eq!(
        result.status,
        UnpackStatus::Published as i32,
        "{}",
        result.error
    );
    assert!(Path::new(&result.path).join("etc/added").is_file());
    assert!(result.manifest_digest.starts_with("sha256:"));

    // A redelivery (the same request id again) is answered from the
    // record: the original answer, no second unpack.
    let mut headers = UnpackRequest::default().headers();
    headers.insert("Nats-Msg-Id", "req-1-redelivered");
    contract
        .jetstream()
        .publish_with_headers(
            subjects::UNPACK_REQUESTS,
            headers,
            encode(&UnpackRequest {
                request_id: "req-1".into(),
                source: source.clone(),
                ..Default::default()
            })
            .into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let message = tokio::time::timeout(DEADLINE, results.next())
        .await
        .unwrap()
        .unwrap();
    let again = UnpackResult::decode_from(&message.subject, message.payload).unwrap();
    assert_eq!(
        again.status,
        UnpackStatus::Published as i32,
        "from the record, not already_present"
    );
    assert_eq!(again.path, result.path);
    assert_eq!(service.metric("gha_unpacker_unpacks_total{").await, 1.0);

    // The CI step's command, over NATS and over HTTP.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let bin = env!("CARGO_BIN_EXE_gha-unpacker");
    for args in [
        vec!["request", &source, "--nats-url", &nats.url()],
        vec![
            "request",
            &source,
            "--url",
            &service.url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--wait",
        ],
    ] {
        let output = tokio::process::Command::new(bin)
            .args(&args)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            format!("{}\n", result.path)
        );
    }
    let missing = format!("oci:{}:v1", dir.path().join("nonexistent").display());
    let failed = tokio::process::Command::new(bin)
        .args(["request", &missing, "--url", &service.url])
        .args(["--token-file", token_file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(failed.stdout.is_empty());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("404"));
    service.stop().await;
}
