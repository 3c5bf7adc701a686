//! Webhooks and the poll both report every job; redeliveries and a poller
//! restart report them again; JetStream still holds each job once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use gha_github::GitHubClient;
use gha_poller::cli::Watched;
use gha_poller::metrics::{OutcomeLabels, PollerMetrics};
use gha_poller::policy::JobPolicy;
use gha_poller::poll_loop::PollLoop;
use gha_poller::webhook::WebhookReceiver;
use gha_poller::webhook_signature::WebhookSecrets;
use gha_proto::{Contract, JobEvent};

mod support;
use gha_testkit::github::{GitHubEmulator, WorkflowSpec};
use gha_testkit::{NatsServer, eventually};
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/widgets";

fn poll_loop(emulator: &GitHubEmulator, contract: &Contract, metrics: &PollerMetrics) -> PollLoop {
    PollLoop {
        github: Arc::new(GitHubClient::new(
            &support::endpoint(emulator),
            emulator.token().to_string().into(),
        )),
        contract: contract.clone(),
        watched: Watched::Repos(vec![REPO.into()]),
        policy: JobPolicy::default(),
        idle_interval: Duration::from_millis(200),
        busy_interval: Duration::from_millis(200),
        budget_per_hour: 100_000,
        reannounce_after: gha_poller::poll_loop::REANNOUNCE_AFTER,
        metrics: metrics.clone(),
        status: Default::default(),
    }
}

fn passes(metrics: &PollerMetrics) -> u64 {
    metrics
        .passes
        .get_or_create(&OutcomeLabels {
            outcome: "ok".into(),
        })
        .get()
}

#[tokio::test]
async fn poll_webhooks_redeliveries_and_a_restart_publish_each_job_once() {
    let nats = NatsServer::start().unwrap();
    let contract = Contract::new(async_nats::connect(nats.url()).await.unwrap());
    contract.ensure_topology().await.unwrap();
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo(REPO);

    let metrics = PollerMetrics::default();
    let client = Arc::new(GitHubClient::new(
        &support::endpoint(&emulator),
        emulator.token().to_string().into(),
    ));
    let receiver = Arc::new(WebhookReceiver::new(
        WebhookSecrets::from_lines("s3cret"),
        JobPolicy::default(),
        contract.clone(),
        vec![client],
        metrics.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let app = receiver.router("/webhook", 1 << 20);
    tokio::spawn(async move { axum::serve(listener, app).await });
    emulator.set_webhook(&url, Some("s3cret"));

    let first_shutdown = CancellationToken::new();
    let first = tokio::spawn(poll_loop(&emulator, &contract, &metrics).run(first_shutdown.clone()));
    emulator
        .create_run(REPO, WorkflowSpec::fan_out("matrix", 5, &["slurm"], vec![]))
        .unwrap();

    // Both sources have seen all five: the webhooks answered, and a poll
    // pass ran after the run existed.
    let before = passes(&metrics);
    eventually(
        "webhooks answered and a pass after them",
        Duration::from_secs(20),
        || async {
            let answered = emulator
                .deliveries()
                .iter()
                .filter(|d| d.attempts.last().and_then(|a| a.status) == Some(202))
                .count();
            (answered == 5 && passes(&metrics) >= before + 2).then_some(())
        },
    )
    .await
    .unwrap();

    // Redeliver everything, and restart the poller (its memory is gone).
    for delivery in emulator.deliveries() {
        assert!(emulator.redeliver(&delivery.id));
    }
    first_shutdown.cancel();
    first.await.unwrap().unwrap();
    let restarted_metrics = PollerMetrics::default();
    let second_shutdown = CancellationToken::new();
    let second = tokio::spawn(
        poll_loop(&emulator, &contract, &restarted_metrics).run(second_shutdown.clone()),
    );
    eventually(
        "redeliveries answered and the restarted poller's pass",
        Duration::from_secs(20),
        || async {
            let redelivered = emulator
                .deliveries()
                .iter()
                .filter(|d| d.attempts.len() == 2)
                .count();
            (redelivered == 5 && passes(&restarted_metrics) >= 1).then_some(())
        },
    )
    .await
    .unwrap();
    second_shutdown.cancel();
    second.await.unwrap().unwrap();

    assert_eq!(support::stream_messages(&contract).await, 5);
    let mut jobs = HashSet::new();
    for event in support::read_events(&contract, "check", 5).await {
        let JobEvent::Queued(job) = event else {
            panic!("{event:?}")
        };
        jobs.insert(job.job_id);
    }
    assert_eq!(jobs.len(), 5);
}
