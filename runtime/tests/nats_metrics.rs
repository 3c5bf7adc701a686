//! `<prefix>_nats_connected` follows a real client through a server
//! restart.

use std::time::Duration;

use gha_runtime::nats_metrics::NatsConnection;
use gha_testkit::{NatsServer, eventually};
use prometheus_client::registry::Registry;

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn the_gauge_is_1_while_connected_and_0_while_the_server_is_gone() {
    let mut nats = NatsServer::start().unwrap();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url())
        .await
        .unwrap();
    let mut registry = Registry::with_prefix("gha_test");
    let connection = NatsConnection::register_pending(&mut registry);

    let text = scrape(&registry);
    assert!(
        text.contains("# TYPE gha_test_nats_connected gauge"),
        "{text}"
    );
    assert!(text.contains("\ngha_test_nats_connected 0\n"), "{text}");
    connection.watch(&client);
    // The client connects in the background (as the services' do).
    eventually("the gauge is 1", Duration::from_secs(10), || {
        let text = scrape(&registry);
        async move { text.contains("\ngha_test_nats_connected 1\n").then_some(()) }
    })
    .await
    .unwrap();

    nats.kill();
    eventually("the gauge drops to 0", Duration::from_secs(10), || {
        let text = scrape(&registry);
        async move { text.contains("\ngha_test_nats_connected 0\n").then_some(()) }
    })
    .await
    .unwrap();

    nats.restart().unwrap();
    eventually("the gauge is 1 again", Duration::from_secs(20), || {
        let text = scrape(&registry);
        async move { text.contains("\ngha_test_nats_connected 1\n").then_some(()) }
    })
    .await
    .unwrap();
}
