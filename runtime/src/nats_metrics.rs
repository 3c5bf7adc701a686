//! The NATS connection's state as a metric, read at each scrape:
//! `<prefix>_nats_connected` is 1 while the client is connected and 0 while
//! it is (re)connecting or not made yet, so an alert can tell a service cut
//! off from NATS from one that is merely idle.

use std::sync::{Arc, OnceLock};

use async_nats::Client;
use async_nats::connection::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Name of the gauge, under the registry's prefix.
pub const NATS_CONNECTED: &str = "nats_connected";

/// Reports whether the watched client is connected, whenever `/metrics` is
/// scraped. Clones share the client.
#[derive(Debug, Clone, Default)]
pub struct NatsConnection {
    client: Arc<OnceLock<Client>>,
}

impl NatsConnection {
    /// Registers the gauge for `client` in `registry` (the service's
    /// prefixed registry).
    pub fn register(registry: &mut Registry, client: &Client) {
        Self::register_pending(registry).watch(client);
    }

    /// Registers a gauge that reads 0 until [`NatsConnection::watch`] names
    /// the client (a service that connects after its registry is served).
    pub fn register_pending(registry: &mut Registry) -> Self {
        let connection = Self::default();
        registry.register_collector(Box::new(connection.clone()));
        connection
    }

    /// The client to report on; the first one named stays.
    pub fn watch(&self, client: &Client) {
        let _ = self.client.set(client.clone());
    }

    fn connected(&self) -> bool {
        self.client
            .get()
            .is_some_and(|client| client.connection_state() == State::Connected)
    }
}

impl Collector for NatsConnection {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(i64::from(self.connected()));
        let metric = encoder.encode_descriptor(
            NATS_CONNECTED,
            "1 while connected to NATS, 0 while (re)connecting",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}
