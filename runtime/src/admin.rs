//! The admin endpoint every service serves: `/metrics` in the Prometheus
//! text format and `/healthz` (200 when every check passes, 503 with the
//! failing checks listed otherwise).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use clap::Args;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Admin endpoint flags.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Address to serve `/metrics` and `/healthz` on, e.g. `0.0.0.0:9464`.
    /// Off when unset.
    #[arg(long, env = "GHA_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
}

/// Named health checks, set by the parts of a service that know.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<RwLock<BTreeMap<&'static str, Result<(), String>>>>,
}

impl Health {
    /// Records the outcome of check `name` (e.g. `nats`).
    pub fn set(&self, name: &'static str, outcome: Result<(), String>) {
        self.checks
            .write()
            .expect("health lock poisoned")
            .insert(name, outcome);
    }

    /// Marks `name` healthy.
    pub fn ok(&self, name: &'static str) {
        self.set(name, Ok(()));
    }

    /// Marks `name` unhealthy, saying why.
    pub fn failing(&self, name: &'static str, why: impl Into<String>) {
        self.set(name, Err(why.into()));
    }

    /// The failing checks and why; empty when healthy.
    pub fn failures(&self) -> Vec<(&'static str, String)> {
        self.checks
            .read()
            .expect("health lock poisoned")
            .iter()
            .filter_map(|(name, outcome)| outcome.as_ref().err().map(|why| (*name, why.clone())))
            .collect()
    }
}

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    health: Health,
}

/// The admin routes, for serving or for tests.
pub fn router(registry: Arc<Registry>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(AdminState { registry, health })
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding metrics: {err}\n"),
        ),
    }
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    let failures = state.health.failures();
    if failures.is_empty() {
        return (StatusCode::OK, "ok\n".to_string());
    }
    let body: String = failures
        .iter()
        .map(|(name, why)| format!("{name}: {why}\n"))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, body)
}

/// Serves the admin routes on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin endpoint: /metrics, /healthz");
    }
    axum::serve(listener, router(registry, health))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
