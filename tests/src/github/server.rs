//! [`GitHubEmulator`]: the emulator started in-process on a free port (or
//! an address of the binary's choosing), with the methods tests use to set
//! up the world, inject faults and inspect what happened.
//!
//! One port answers both plain HTTP and HTTPS (the first byte of a
//! connection tells a TLS handshake apart), with a certificate for
//! `127.0.0.1`/`localhost` signed by a CA made for this emulator
//! ([`GitHubEmulator::ca`]). [`EmulatorConfig::https`] says which scheme
//! the API advertises (its URL, `Link` headers, payload URLs); the runner
//! protocol stays plain HTTP so fake runners need no CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::tls::TestCa;

use super::auth::Credentials;
use super::faults::Fault;
use super::gate::{ConnectionKill, gate};
use super::model::{
    Conclusion, Installation, Job, JobStatus, OwnerKind, Repo, Runner, WorkflowSpec,
};
use super::ratelimit::{Limiter, RateLimitSettings};
use super::shared::{RequestRecord, Shared};
use super::webhooks::{Delivery, DeliveryFault, deliver};
use super::world::{ApiError, Settings, World};
use super::{api, control, runner_http};

/// How often timeouts (queued jobs, silent runners) are applied.
const TICK: Duration = Duration::from_millis(100);

/// How the emulator starts.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub settings: Settings,
    pub rate_limits: RateLimitSettings,
    /// The personal access token accepted from the start.
    pub token: String,
    /// Advertise `https://` (the API is served over TLS with the
    /// emulator's own CA); plain `http://` otherwise. Both work either way.
    pub https: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            rate_limits: RateLimitSettings::default(),
            token: format!("ghp_{}", &uuid::Uuid::new_v4().simple().to_string()[..32]),
            https: false,
        }
    }
}

/// A running emulator. Dropping it stops the server and its tasks.
pub struct GitHubEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    token: String,
    https: bool,
    ca: Arc<TestCa>,
    shutdown: CancellationToken,
}

impl GitHubEmulator {
    /// Starts on 127.0.0.1 and a free port with default settings.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(EmulatorConfig::default()).await
    }

    /// Starts on 127.0.0.1 and a free port, advertising HTTPS: clients
    /// must trust [`GitHubEmulator::ca`].
    pub async fn start_https() -> std::io::Result<Self> {
        Self::start_with(EmulatorConfig {
            https: true,
            ..EmulatorConfig::default()
        })
        .await
    }

    /// Starts on 127.0.0.1 and a free port.
    pub async fn start_with(config: EmulatorConfig) -> std::io::Result<Self> {
        Self::bind("127.0.0.1:0".parse().expect("address"), config).await
    }

    /// Starts on `addr`.
    pub async fn bind(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let scheme = if config.https { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let ca = Arc::new(TestCa::new("github-emulator").map_err(std::io::Error::other)?);
        let tls = TlsAcceptor::from(ca.server_config().map_err(std::io::Error::other)?);
        let mut credentials = Credentials::default();
        credentials.add_pat(config.token.clone());
        let shared = Arc::new(Shared::new(
            World::new(base_url, config.settings),
            credentials,
            Limiter::new(config.rate_limits),
        ));
        let shutdown = CancellationToken::new();
        let app = api::routes()
            .route_layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .merge(runner_http::routes())
            .merge(control::routes())
            .with_state(shared.clone());
        tokio::spawn(serve(listener, tls, app, shutdown.clone()));
        tokio::spawn(deliver(
            shared.webhooks.clone(),
            shared.webhook_wake.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(tick(shared.clone(), shutdown.clone()));
        Ok(Self {
            shared,
            addr,
            token: config.token,
            https: config.https,
            ca,
            shutdown,
        })
    }

    /// `http(s)://127.0.0.1:<port>`: the API base URL (what
    /// `https://api.github.com` is for github.com), in the scheme the
    /// emulator advertises.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// `https://127.0.0.1:<port>`, whatever is advertised.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA that signed the emulator's certificate: what a client must
    /// trust (`--github-ca-file` = `ca().cert_file()`).
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The personal access token accepted from the start.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Accepts another personal access token (with its own rate budget).
    pub fn add_token(&self, token: &str) {
        self.shared
            .credentials
            .lock()
            .expect("credentials lock")
            .add_pat(token);
    }

    /// Adds an organisation's repository `org/name`.
    pub fn add_repo(&self, full_name: &str) -> Repo {
        self.shared
            .mutate(|world, _| world.add_repo(full_name, OwnerKind::Organization))
            .expect("valid repository name")
    }

    /// Adds a user's repository `user/name`.
    pub fn add_user_repo(&self, full_name: &str) -> Repo {
        self.shared
            .mutate(|world, _| world.add_repo(full_name, OwnerKind::User))
            .expect("valid repository name")
    }

    /// Starts a workflow run; its jobs are queued (webhooks fire).
    pub fn create_run(&self, repo: &str, spec: WorkflowSpec) -> Result<u64, ApiError> {
        self.shared
            .mutate(|world, now| world.create_run(repo, spec, now))
    }

    /// Cancels a run, as the "Cancel workflow" button does.
    pub fn cancel_run(&self, run_id: u64) -> Result<(), ApiError> {
        self.shared
            .mutate(|world, now| world.cancel_run(run_id, now))
    }

    /// Re-runs a completed run; returns the new attempt number.
    pub fn rerun(&self, run_id: u64) -> Result<u32, ApiError> {
        self.shared.mutate(|world, now| world.rerun(run_id, now))
    }

    /// Moves a `waiting` or `requested` job to `queued`.
    pub fn release_job(&self, job_id: u64) -> Result<(), ApiError> {
        self.shared
            .mutate(|world, now| world.release_job(job_id, now))
    }

    /// A job (any attempt, including those held back by `needs:`).
    pub fn job(&self, job_id: u64) -> Option<Job> {
        self.shared.read(|world, _| world.job_any(job_id).cloned())
    }

    /// The visible jobs of the run's latest attempt (or all attempts).
    pub fn run_jobs(&self, run_id: u64, all_attempts: bool) -> Vec<Job> {
        self.shared.read(|world, _| {
            world
                .run_jobs(run_id, all_attempts)
                .map(|jobs| jobs.into_iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// The run's status and conclusion.
    pub fn run_status(&self, run_id: u64) -> (JobStatus, Option<Conclusion>) {
        self.shared.read(|world, _| world.run_status(run_id))
    }

    /// Every registered runner.
    pub fn runners(&self) -> Vec<Runner> {
        self.shared
            .read(|world, _| world.runners.values().cloned().collect())
    }

    /// Sends `workflow_job` webhooks to `url`, signed with `secret`.
    pub fn set_webhook(&self, url: &str, secret: Option<&str>) {
        self.shared.set_webhook(url, secret);
    }

    /// Applies `fault` to the next webhook delivery.
    pub fn inject_delivery_fault(&self, fault: DeliveryFault) {
        self.shared
            .webhooks
            .lock()
            .expect("webhook lock")
            .inject(fault);
    }

    /// Every webhook delivery so far and what became of it.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared
            .webhooks
            .lock()
            .expect("webhook lock")
            .deliveries()
            .to_vec()
    }

    /// Sends delivery `id` again with the same delivery id.
    pub fn redeliver(&self, id: &str) -> bool {
        self.shared.redeliver(id)
    }

    /// Injects a REST fault.
    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults.lock().expect("faults lock").add(fault);
    }

    /// Removes every REST fault.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults lock").clear();
    }

    /// Refuses the next `count` REST requests with a secondary rate limit.
    pub fn secondary_limit_storm(&self, count: u32) {
        self.shared
            .limiter
            .lock()
            .expect("limiter lock")
            .start_storm(count);
    }

    /// Every REST request received so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.lock().expect("log lock").clone()
    }

    /// Registers a GitHub App by its RSA public key (PEM).
    pub fn register_app(&self, app_id: u64, public_key_pem: &[u8]) -> Result<(), ApiError> {
        self.shared
            .credentials
            .lock()
            .expect("credentials lock")
            .add_app(app_id, public_key_pem)
    }

    /// Installs app `app_id` on `account` with access to `repos`; returns
    /// the installation id.
    pub fn add_installation(&self, app_id: u64, account: &str, repos: &[&str]) -> u64 {
        self.shared.mutate(|world, _| {
            let id = 50_000_000 + world.installations.len() as u64 + 1;
            world.installations.insert(
                id,
                Installation {
                    id,
                    app_id,
                    account: account.into(),
                    repos: repos.iter().map(|repo| repo.to_string()).collect(),
                },
            );
            id
        })
    }
}

impl Drop for GitHubEmulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Accepts connections until `shutdown`, TLS or plain by their first
/// byte. Each request carries a [`ConnectionKill`] so a fault can drop its
/// connection unanswered.
async fn serve(listener: TcpListener, tls: TlsAcceptor, app: Router, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "github emulator: accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (app, tls, shutdown) = (app.clone(), tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            if is_tls_handshake(&stream).await {
                match tls.accept(stream).await {
                    Ok(stream) => serve_connection(stream, app, shutdown).await,
                    Err(err) => {
                        tracing::debug!(error = %err, "github emulator: TLS handshake failed")
                    }
                }
            } else {
                serve_connection(stream, app, shutdown).await;
            }
        });
    }
}

/// True when the client opens with a TLS handshake record (0x16).
async fn is_tls_handshake(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
}

/// Serves HTTP/1.1 on one connection until it closes, a fault kills it, or
/// `shutdown`.
async fn serve_connection<S>(stream: S, app: Router, shutdown: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kill = CancellationToken::new();
    let service = {
        let kill = kill.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectionKill(kill.clone()));
            app.clone().oneshot(request.map(Body::new))
        })
    };
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = kill.cancelled() => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Applies timeouts even when nobody asks.
async fn tick(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => shared.mutate(|_, _| ()),
            _ = shutdown.cancelled() => return,
        }
    }
}

/// A runner connected in-process, for tests that need jobs to start and
/// finish without a `fake-runner` process.
pub struct InProcessRunner {
    shared: Arc<Shared>,
    session: String,
}

impl GitHubEmulator {
    /// Registers and connects a (non-ephemeral) runner at repository `repo`
    /// with `labels`.
    pub fn connect_runner(
        &self,
        repo: &str,
        name: &str,
        labels: &[&str],
    ) -> Result<InProcessRunner, ApiError> {
        let session = self.shared.mutate(|world, now| {
            let (token, _) =
                world.registration_token(super::model::Scope::Repo(repo.into()), now)?;
            world.open_session(
                super::runner_api::SessionRequest::Registration {
                    registration_token: token,
                    name: name.into(),
                    labels: labels.iter().map(|label| label.to_string()).collect(),
                    ephemeral: false,
                },
                now,
            )
        })?;
        Ok(InProcessRunner {
            shared: self.shared.clone(),
            session: session.session_id,
        })
    }
}

impl InProcessRunner {
    /// Takes the oldest queued job it can run, if any: it goes `in_progress`.
    pub fn take_job(&self) -> Result<Option<super::runner_api::AssignedJob>, ApiError> {
        self.shared
            .mutate(|world, now| world.next_job(&self.session, now))
    }

    /// Finishes its job with `result`.
    pub fn finish(
        &self,
        job_id: u64,
        result: super::runner_api::JobResult,
    ) -> Result<(), ApiError> {
        self.shared
            .mutate(|world, now| world.complete_job(&self.session, job_id, result, now))
    }
}
