//! Helpers the poller's test files share: reading what reached JetStream.

#![allow(dead_code)] // each test file uses a part

use std::time::Duration;

use gha_proto::{Contract, JobEvent, topology};

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
