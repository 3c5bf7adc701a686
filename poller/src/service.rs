//! `gha-poller run`: the webhook endpoint, the reconciliation poll, the
//! health checks and the admin endpoint, as one service. A task that ends
//! takes the service down (its supervisor restarts it); shutdown lets each
//! finish its request.
//!
//! A transient NATS error never kills it: the admin endpoint is up first
//! (its `/healthz` says NATS is not there yet), the connection is retried
//! until it succeeds, creating the streams and buckets too, and a failed
//! publication is offered again by the next pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gha_proto::Contract;
use gha_runtime::admin::{self, Health};
use gha_runtime::nats_metrics::NatsConnection;
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::Config;
use crate::health::{self, PollStatus};
use crate::metrics::PollerMetrics;
use crate::poll_loop::PollLoop;
use crate::webhook::WebhookReceiver;

/// Largest webhook body accepted; `workflow_job` payloads are a few KiB.
const MAX_WEBHOOK_BODY: usize = 1024 * 1024;
/// Longest pause between two attempts at creating the streams.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// The steps of a start, in order (for tests that break NATS at each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPhase {
    /// Connecting to NATS (waits until a server answers).
    Connect,
    /// Creating or updating the streams and buckets.
    EnsureTopology,
    /// Serving: the poll loops and the webhook endpoint run.
    Serve,
}

/// Called before each phase, and awaited: a test's hook can stop NATS.
pub type PhaseHook =
    Arc<dyn Fn(StartPhase) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs `config` (a `Run`) until `shutdown` or a task fails.
pub async fn serve(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    serve_with(config, None, shutdown).await
}

/// [`serve`], calling `hook` before each [`StartPhase`].
pub async fn serve_with(
    config: Config,
    hook: Option<PhaseHook>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Config::Run {
        github,
        nats,
        admin_listen,
        webhook,
        poll_interval,
        busy_poll_interval,
        request_budget,
        reannounce_after,
    } = config
    else {
        anyhow::bail!("serve takes the run configuration");
    };
    let phase = |phase: StartPhase| {
        let hook = hook.clone();
        async move {
            tracing::debug!(?phase, "start phase");
            if let Some(hook) = hook {
                hook(phase).await;
            }
        }
    };
    let metrics = PollerMetrics::default();
    let mut registry = Registry::with_prefix("gha_poller");
    metrics.register(&mut registry);
    let connection = NatsConnection::register_pending(&mut registry);
    let health = Health::default();
    health.failing("nats", "connecting");
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

    phase(StartPhase::Connect).await;
    let client = tokio::select! {
        client = nats.connect("gha-poller") => client?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    connection.watch(&client);
    let contract = Contract::new(client);
    phase(StartPhase::EnsureTopology).await;
    if !ensure_topology(&contract, &health, &shutdown).await {
        return Ok(());
    }

    phase(StartPhase::Serve).await;
    let clients = github.clients();
    let polls = Arc::new(PollStatus::default());
    {
        let watched = health::Watched {
            nats: contract.client().clone(),
            auth: github.endpoint.auth_status().clone(),
            polls: polls.clone(),
            stale_after: (poll_interval * 10).max(Duration::from_secs(60)),
        };
        let (health, shutdown) = (health.clone(), shutdown.clone());
        tasks.spawn(async move {
            health::watch(health, watched, shutdown).await;
            Ok("health checks")
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
            reannounce_after,
            metrics: metrics.clone(),
            status: polls.clone(),
        };
        let poll_shutdown = shutdown.clone();
        tasks.spawn(async move {
            poll.run(poll_shutdown).await?;
            Ok("poll loop")
        });
    }

    gha_runtime::tasks::supervise(tasks, &shutdown).await
}

/// Creates the streams and buckets, trying again (1 s, 2 s, ... 10 s
/// apart) until NATS answers; false when `shutdown` came first.
async fn ensure_topology(
    contract: &Contract,
    health: &Health,
    shutdown: &CancellationToken,
) -> bool {
    let mut pause = Duration::from_secs(1);
    loop {
        match contract.ensure_topology().await {
            Ok(()) => {
                health.ok("nats");
                return true;
            }
            Err(err) => {
                tracing::warn!(error = %err, retry_in_s = pause.as_secs(), "creating streams and buckets failed; trying again");
                health.failing("nats", format!("creating streams and buckets: {err}"));
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_RETRY);
    }
}
