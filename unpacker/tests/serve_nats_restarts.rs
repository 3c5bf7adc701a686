//! `gha-unpacker serve` survives a nats-server restart at each phase of
//! its start: the connection, `ensure_topology`, the consumer's creation
//! and its first pull of requests. Each time the service must come up
//! (healthy) and answer a request, and never exit.
//!
//! A proxy in front of the server finds the phase by the request on the
//! wire, swallows it and holds the connection while the test restarts the
//! real server (`nats_phases`).

mod nats_phases;
mod service;
mod support;

use futures::StreamExt;
use gha_proto::consumer::Decode;
use gha_proto::v1::{UnpackRequest, UnpackResult, UnpackStatus};
use gha_proto::{Contract, subjects};
use gha_testkit::{NatsServer, eventually};
use nats_phases::PhaseProxy;
use service::*;
use support::Corrupt;

async fn restart_during(trigger: &'static str) {
    let mut nats = NatsServer::start().unwrap();
    let proxy = PhaseProxy::start(nats.port(), trigger).await;
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "restarts", 1024, Corrupt::Nothing);
    let mut setup = Setup::dir(dir.path());
    setup.nats = Some(proxy.url.clone());
    let service = setup.start().await;
    tokio::time::timeout(DEADLINE, proxy.fired())
        .await
        .unwrap_or_else(|_| panic!("the service never sent {trigger:?}"));
    let mut nats = tokio::task::spawn_blocking(move || {
        nats.restart().unwrap();
        nats
    })
    .await
    .unwrap();
    proxy.resume();

    let health = format!("{}/healthz", service.admin);
    eventually("the service to be healthy again", DEADLINE, || async {
        assert!(
            !service.task.is_finished(),
            "the service exited after a restart during {trigger:?}"
        );
        let response = service.http.get(&health).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await
    .unwrap();

    // It works: a request straight to the server gets its result.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let contract = Contract::new(client.clone());
    let mut results = client
        .subscribe(subjects::unpack_result("after-restart"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    contract
        .publish(&UnpackRequest {
            request_id: "after-restart".into(),
            source,
            ..Default::default()
        })
        .await
        .unwrap();
    let message = tokio::time::timeout(DEADLINE, results.next())
        .await
        .unwrap_or_else(|_| panic!("no result after a restart during {trigger:?}"))
        .unwrap();
    let result = UnpackResult::decode_from(&message.subject, message.payload).unwrap();
    assert_eq!(
        result.status,
        UnpackStatus::Published as i32,
        "{}",
        result.error
    );
    assert!(!service.task.is_finished());
    service.stop().await;
    nats.kill();
}

#[tokio::test]
async fn a_restart_while_connecting() {
    restart_during("CONNECT {").await;
}

#[tokio::test]
async fn a_restart_while_ensuring_the_topology() {
    restart_during("$JS.API.STREAM.").await;
}

#[tokio::test]
async fn a_restart_while_creating_the_consumer() {
    restart_during("$JS.API.CONSUMER.CREATE.GHA_UNPACK").await;
}

#[tokio::test]
async fn a_restart_at_the_first_pull_of_requests() {
    restart_during("$JS.API.CONSUMER.MSG.NEXT.GHA_UNPACK").await;
}
