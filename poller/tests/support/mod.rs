//! Helpers the poller's test files share: the emulator's API over HTTPS,
//! reading what reached JetStream.

#![allow(dead_code)] // each test file uses a part

use std::time::Duration;

use gha_github::{Endpoint, TlsRoots};
use gha_proto::{Contract, JobEvent, topology};
use gha_testkit::github::GitHubEmulator;

/// The emulator's API, its certificate checked against the emulator's CA
/// (and the platform's): what the poller does against GHES with
/// `--github-ca-file`.
pub fn endpoint(emulator: &GitHubEmulator) -> Endpoint {
    let roots = TlsRoots::with_ca_pem(emulator.ca().cert_pem().as_bytes()).unwrap();
    Endpoint::new(&emulator.url(), &roots).unwrap()
}

/// The next `count` events on GHA_JOBS for the durable reader `reader`
/// (acknowledged, so the next call continues after them).
pub async fn read_events(contract: &Contract, reader: &str, count: usize) -> Vec<JobEvent> {
    let consumer = contract
        .consumer::<JobEvent>(
            topology::JOBS_STREAM,
            topology::durable_pull(reader, "test reader", Duration::from_secs(30)),
            10,
        )
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut events = Vec::new();
    while events.len() < count {
        let delivery = tokio::time::timeout(Duration::from_secs(20), messages.next())
            .await
            .expect("a message in time")
            .unwrap()
            .unwrap();
        delivery.ack().await.unwrap();
        events.push(delivery.body);
    }
    events
}

/// How many messages GHA_JOBS holds.
pub async fn stream_messages(contract: &Contract) -> u64 {
    let mut stream = contract
        .jetstream()
        .get_stream(topology::JOBS_STREAM)
        .await
        .unwrap();
    stream.info().await.unwrap().state.messages
}
