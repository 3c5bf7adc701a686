//! `gha-poller run`: the webhook endpoint, the reconciliation poll and the
//! admin endpoint, as one service. A task that ends takes the service down
//! (its supervisor restarts it); shutdown lets each finish its request.

use std::sync::Arc;

use anyhow::Context;
use gha_proto::Contract;
use gha_runtime::admin::{self, Health};
use gha_runtime::nats_metrics::NatsConnection;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Config;
use crate::metrics::PollerMetrics;
use crate::poll_loop::PollLoop;
use crate::webhook::WebhookReceiver;

/// Largest webhook body accepted; `workflow_job` payloads are a few KiB.
const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

/// Runs `config` (a `Run`) until `shutdown` or a task fails.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Config::Run {
        github,
        nats,
        admin_listen,
        webhook,
        poll_interval,
        busy_poll_interval,
        request_budget,
    } = config
    else {
        anyhow::bail!("serve takes the run configuration");
    };
    let client = nats.connect("gha-poller").await?;
    let contract = Contract::new(client.clone());
    contract
        .ensure_topology()
        .await
        .context("creating streams and buckets")?;
    let metrics = PollerMetrics::default();
    let mut registry = Registry::with_prefix("gha_poller");
    metrics.register(&mut registry);
    NatsConnection::register(&mut registry, &client);
    let health = Health::default();
    health.ok("nats");
    let clients = github.clients();

    let mut tasks: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    if let Some(addr) = admin_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let (registry, health, shutdown) = (Arc::new(registry), health.clone(), shutdown.clone());
        tasks.spawn(async move {
            admin::serve(listener, registry, health, shutdown).await?;
            Ok("admin endpoint")
        });
    }
    if let Some((addr, path, secrets)) = webhook {
        let receiver = Arc::new(WebhookReceiver::new(
            secrets,
            github.policy.clone(),
            contract.clone(),
            clients.clone(),
            metrics.clone(),
        ));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tracing::info!(%addr, %path, "webhook endpoint");
        let app = receiver.router(&path, MAX_WEBHOOK_BODY);
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await?;
            Ok("webhook endpoint")
        });
    }
    // One poll loop per identity: each has its own rate limit.
    for client in clients {
        let poll = PollLoop {
            github: client,
            contract: contract.clone(),
            watched: github.watched.clone(),
            policy: github.policy.clone(),
            idle_interval: poll_interval,
            busy_interval: busy_poll_interval,
            budget_per_hour: request_budget,
            metrics: metrics.clone(),
        };
        let poll_shutdown = shutdown.clone();
        tasks.spawn(async move {
            poll.run(poll_shutdown).await?;
            Ok("poll loop")
        });
    }

    gha_runtime::tasks::supervise(tasks, &shutdown).await
}
