//! `gha-scheduler run`: the engine wired to NATS — demand consumer,
//! submission driver, JIT-config server, reconcile loop — as one service.
//! A task that ends takes the service down.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gha_github::{AppCredentials, Auth, Endpoint, GitHubClient};
use gha_proto::v1::RunnerEvent;
use gha_proto::{Contract, JobEvent, topology};
use gha_runtime::admin::{self, Health};
use gha_runtime::nats_metrics::NatsConnection;
use gha_runtime::tasks::{Tasks, supervise};
use prometheus_client::registry::Registry;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::admission::Admission;
use crate::engine::{Engine, Placer};
use crate::github::{GitHubApi, RestGitHub};
use crate::live_metrics::LiveJobs;
use crate::metrics::Metrics;
use crate::run_args::{GitHubAuth, RunConfig};
use crate::slurm::BatchSystem;
use crate::slurm::cli::SlurmCli;
use crate::{jit, reconcile, submit};

/// Messages pulled at once: small, so a slow pass never outlives AckWait.
const BATCH: usize = 16;

/// Backoff before a demand message whose record could not be written is
/// delivered again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs the scheduler on `engine` until `shutdown` (or a task fails).
pub async fn serve<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: Arc<Engine<B, G, P>>,
    contract: Contract,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let live = engine.rebuild().await?;
    info!(live, "rebuilt job records from the bucket");
    match reconcile::pass(&engine).await {
        Ok(pass) => {
            engine.metrics.reconcile_pass("ok");
            info!(actions = pass.actions, "reconciled at start");
        }
        Err(err) => {
            engine.metrics.reconcile_pass(err.metric_label());
            warn!(error = %err, "reconcile at start failed; the loop retries");
        }
    }
    let demand = contract.scheduler_jobs(BATCH).await?;
    let events = contract
        .consumer::<RunnerEvent>(
            topology::RUNNER_EVENTS_STREAM,
            topology::scheduler_runner_events_consumer(),
            BATCH,
        )
        .await?;
    let requests = contract.serve_jit_config().await?;

    let mut tasks = Tasks::new();
    let on_demand = engine.clone();
    tasks.spawn(named(
        "demand",
        consume(
            demand,
            engine.metrics.clone(),
            shutdown.clone(),
            move |event: JobEvent| {
                let engine = on_demand.clone();
                async move {
                    match event {
                        JobEvent::Queued(job) => engine.on_queued(job).await,
                        JobEvent::Status(change) => engine.on_status(change).await,
                    }
                }
            },
        )
        .instrument(info_span!("demand")),
    ));
    let on_event = engine.clone();
    tasks.spawn(named(
        "runner_events",
        consume(
            events,
            engine.metrics.clone(),
            shutdown.clone(),
            move |event: RunnerEvent| {
                let engine = on_event.clone();
                async move { engine.on_runner_event(event).await }
            },
        )
        .instrument(info_span!("runner_events")),
    ));
    tasks.spawn(named(
        "submit",
        submit::drive(engine.clone(), shutdown.clone()).instrument(info_span!("submit")),
    ));
    tasks.spawn(named(
        "jit",
        answer_jit(engine.clone(), contract.clone(), requests, shutdown.clone())
            .instrument(info_span!("jit")),
    ));
    tasks.spawn(named(
        "reconcile",
        reconcile::run_loop(engine.clone(), shutdown.clone()).instrument(info_span!("reconcile")),
    ));
    supervise(tasks, &shutdown).await
}

/// A task that runs until shutdown, named for the supervisor.
async fn named(what: &'static str, task: impl Future<Output = ()>) -> anyhow::Result<&'static str> {
    task.await;
    Ok(what)
}

/// Feeds each message of `consumer` to `handle`; acks after it returns
/// Ok (the state it implies is durable), asks for redelivery otherwise.
async fn consume<T, F, Fut>(
    consumer: gha_proto::TypedConsumer<T>,
    metrics: Metrics,
    shutdown: CancellationToken,
    handle: F,
) where
    T: gha_proto::consumer::Decode + Clone,
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), crate::engine::EngineError>>,
{
    loop {
        let mut deliveries = tokio::select! {
            () = shutdown.cancelled() => return,
            deliveries = consumer.messages() => match deliveries {
                Ok(deliveries) => deliveries,
                Err(err) => {
                    warn!(error = %err, "pulling messages failed; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            },
        };
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => return,
                next = deliveries.next() => next,
            };
            let Some(delivery) = delivery else { break };
            let delivery = match delivery {
                Ok(delivery) => delivery,
                Err(err) => {
                    warn!(error = %err, "a message could not be read");
                    continue;
                }
            };
            let acked = match handle(delivery.body.clone()).await {
                Ok(()) => delivery.ack().await,
                Err(err) => {
                    warn!(error = %err, "message not recorded; redelivering");
                    metrics.error(err.metric_label());
                    delivery.retry_after(RETRY_AFTER).await
                }
            };
            if let Err(err) = acked {
                warn!(error = %err, "ack failed; the message will be redelivered");
            }
        }
    }
}

async fn answer_jit<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: Arc<Engine<B, G, P>>,
    contract: Contract,
    mut requests: gha_proto::client::Requests<gha_proto::v1::JitConfigRequest>,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            () = shutdown.cancelled() => return,
            next = requests.next() => next,
        };
        let Some(request) = request else { return };
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                warn!(error = %err, "an undecodable JIT config request");
                continue;
            }
        };
        let engine = engine.clone();
        let contract = contract.clone();
        tokio::spawn(async move {
            let reply = jit::answer(&engine, request.body).await;
            if let Some(to) = request.reply
                && let Err(err) = contract.reply(to, &reply).await
            {
                warn!(error = %err, "could not send a JIT config reply");
            }
        });
    }
}

/// `gha-scheduler run`: connects, builds the engine from `config`, serves
/// the admin endpoint, and runs until `shutdown`.
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = config.nats.connect("gha-scheduler").await?;
    let contract = Contract::new(client.clone());
    contract
        .ensure_topology()
        .await
        .context("creating streams and buckets")?;
    let kv = contract.job_states().await?;
    let endpoint = Endpoint::new(&config.github_api_url, &config.github_tls)
        .context("setting up the GitHub client")?;
    let github = match config.github_auth {
        GitHubAuth::Token(token) => RestGitHub::new(Arc::new(GitHubClient::new(&endpoint, token))),
        GitHubAuth::App {
            app_id,
            key_pem,
            installation,
        } => {
            let app = Arc::new(
                AppCredentials::new(&endpoint, app_id, key_pem.expose_secret().as_bytes())
                    .map_err(|err| anyhow::anyhow!("GitHub App key: {err}"))?,
            );
            match installation {
                Some(installation) => RestGitHub::new(Arc::new(GitHubClient::with_auth(
                    &endpoint,
                    Auth::Installation { app, installation },
                ))),
                None => RestGitHub::per_installation(&endpoint, app),
            }
        }
    };
    let metrics = Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let admission = Admission::new(config.policy.limits.clone());
    let pools: Vec<String> = config
        .policy
        .pools
        .iter()
        .map(|pool| pool.name.clone())
        .collect();
    metrics.prime_pools(&pools);
    let engine = Engine::new(
        kv,
        SlurmCli::new(config.slurm),
        github,
        config.policy,
        config.settings,
        admission,
        metrics,
    );
    let scheduler_registry = registry.sub_registry_with_prefix("gha_scheduler");
    NatsConnection::register(scheduler_registry, &client);
    LiveJobs::register(scheduler_registry, pools, &engine);
    let mut admin_task = None;
    if let Some(addr) = config.admin_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let health = Health::default();
        health.ok("nats");
        let shutdown = shutdown.clone();
        admin_task = Some(tokio::spawn(admin::serve(
            listener,
            Arc::new(registry),
            health,
            shutdown,
        )));
    }
    let outcome = serve(engine, contract, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    outcome
}
