//! `gha-unpacker serve`: the HTTP API, the NATS consumer, the expiry sweep
//! and the admin endpoint (`/metrics` with prefix `gha_unpacker`,
//! `/healthz`), as one service. A task that ends takes the service down;
//! at shutdown no new unpack starts and a transaction under way is aborted.

pub mod config;
pub mod http;
pub mod nats;

use std::sync::Arc;

use anyhow::Context;
use gha_runtime::admin::{self, Health};
use gha_runtime::nats_metrics::NatsConnection;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::UnpackerMetrics;
use crate::publish::Publisher;
use crate::publish::cvmfs::CvmfsPublisher;
use crate::publish::dir::DirPublisher;
use crate::service::{Opener, Service};
use crate::store::Store;

pub use config::{PublisherConfig, ServeArgs, ServeConfig};

/// Opens the publisher `config` names.
pub fn open_publisher(
    config: &PublisherConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<Arc<dyn Publisher>> {
    Ok(match config {
        PublisherConfig::Dir { root } => Arc::new(DirPublisher::open(root, shutdown)?),
        PublisherConfig::Cvmfs(cvmfs) => Arc::new(CvmfsPublisher::new(cvmfs.clone(), shutdown)),
    })
}

/// Runs the service until `shutdown` or a task fails.
pub async fn serve(
    config: ServeConfig,
    opener: Opener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let api = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let admin = match config.admin_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?,
        ),
        None => None,
    };
    serve_on(api, admin, config, opener, shutdown).await
}

/// [`serve`] on listeners bound already (`config.listen` and
/// `config.admin_listen` are not used): tests bind port 0.
pub async fn serve_on(
    api: tokio::net::TcpListener,
    admin: Option<tokio::net::TcpListener>,
    config: ServeConfig,
    opener: Opener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(&config.state_dir)?);
    let publisher = open_publisher(&config.publisher, shutdown.clone())?;
    tracing::info!(publisher = %publisher.describe(), state = %config.state_dir.display(), "serving");
    let metrics = UnpackerMetrics::default();
    let mut registry = Registry::with_prefix("gha_unpacker");
    metrics.register(&mut registry);
    // Without NATS (`--no-nats`) there is no connection to report.
    let nats_connection = if config.nats.is_some() {
        NatsConnection::register_pending(&mut registry)
    } else {
        NatsConnection::default()
    };
    let health = Health::default();
    let service = Arc::new(Service::new(
        publisher,
        store,
        opener,
        config.defaults.clone(),
        config.max_concurrent,
        metrics,
        shutdown.clone(),
    ));

    let mut tasks: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    if let Some(listener) = admin {
        let (registry, health, shutdown) = (Arc::new(registry), health.clone(), shutdown.clone());
        tasks.spawn(async move {
            admin::serve(listener, registry, health, shutdown).await?;
            Ok("admin endpoint")
        });
    }
    let listener = api;
    tracing::info!(addr = %listener.local_addr()?, "HTTP API");
    let app = http::router(service.clone(), config.tokens);
    let http_shutdown = shutdown.clone();
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await?;
        Ok("HTTP API")
    });
    if let Some(nats) = config.nats {
        // Unhealthy until the consumer is up, from the start.
        health.failing("nats", "connecting");
        let (service, health, shutdown) = (service.clone(), health.clone(), shutdown.clone());
        let concurrency = config.max_concurrent * 2;
        tasks.spawn(async move {
            nats::consume(
                service,
                nats,
                nats_connection,
                health,
                concurrency,
                shutdown,
            )
            .await?;
            Ok("NATS consumer")
        });
    }
    let sweep_shutdown = shutdown.clone();
    tasks.spawn(async move {
        service
            .sweep_loop(config.sweep_interval, sweep_shutdown)
            .await;
        Ok("expiry sweep")
    });

    gha_runtime::tasks::supervise(tasks, &shutdown).await
}
