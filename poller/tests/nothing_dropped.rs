//! Nothing the scheduler needs is dropped: demand it has no record of is
//! announced again whatever the dedup window, a status change whose
//! publication failed is published later, and a restarted poller reports
//! the jobs that left the queue while it was down.

use std::sync::Arc;
use std::time::Duration;

use gha_github::GitHubClient;
use gha_poller::cli::Watched;
use gha_poller::metrics::PollerMetrics;
use gha_poller::policy::JobPolicy;
use gha_poller::poll_loop::PollLoop;
use gha_proto::v1::{JobPhase, JobState, JobStatus};
use gha_proto::{Contract, JobEvent};
use gha_testkit::github::{GitHubEmulator, JobSpec, WorkflowSpec};
use gha_testkit::{NatsServer, eventually};
use tokio_util::sync::CancellationToken;

mod support;

const REPO: &str = "acme/widgets";

/// A client that waits for the server and reconnects after a restart.
async fn connect(nats: &NatsServer) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url())
        .await
        .unwrap()
}

fn ok_passes(metrics: &PollerMetrics) -> u64 {
    metrics
        .passes
        .get_or_create(&gha_poller::metrics::OutcomeLabels {
            outcome: "ok".into(),
        })
        .get()
}

fn poll_loop(emulator: &GitHubEmulator, contract: &Contract, reannounce: Duration) -> PollLoop {
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
        reannounce_after: reannounce,
        metrics: PollerMetrics::default(),
        status: Default::default(),
    }
}

struct Setup {
    nats: NatsServer,
    contract: Contract,
    emulator: GitHubEmulator,
}

async fn setup() -> Setup {
    let nats = NatsServer::start().unwrap();
    let contract = Contract::new(connect(&nats).await);
    contract.ensure_topology().await.unwrap();
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo(REPO);
    Setup {
        nats,
        contract,
        emulator,
    }
}

fn one_job() -> WorkflowSpec {
    WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])])
}

/// The record the scheduler would have written for `job`.
fn record_of(job: gha_proto::v1::QueuedJob) -> JobState {
    JobState {
        job: Some(job),
        phase: JobPhase::Submitted as i32,
        attempt: 1,
        ..JobState::default()
    }
}

#[tokio::test]
async fn a_queued_job_without_a_record_is_announced_again_until_one_exists() {
    let setup = setup().await;
    setup.emulator.create_run(REPO, one_job()).unwrap();
    let shutdown = CancellationToken::new();
    let poll = poll_loop(&setup.emulator, &setup.contract, Duration::from_secs(1));
    let metrics = poll.metrics.clone();
    let task = tokio::spawn(poll.run(shutdown.clone()));
    // Published, then (no scheduler, no record) published again under a
    // new message id once the job has been queued for a grace.
    let events = support::read_events(&setup.contract, "reader", 2).await;
    let (JobEvent::Queued(first), JobEvent::Queued(again)) = (&events[0], &events[1]) else {
        panic!("{events:?}")
    };
    assert_eq!(first.job_id, again.job_id);
    // Once the scheduler holds a record, nothing more is announced.
    let records = setup.contract.job_states().await.unwrap();
    records
        .create(&first.job_id.to_string(), &record_of(first.clone()))
        .await
        .unwrap();
    let settled = support::stream_messages(&setup.contract).await;
    let passes = ok_passes(&metrics);
    // Passes over more than two graces (200 ms apart).
    eventually(
        "passes over two graces",
        Duration::from_secs(20),
        || async { (ok_passes(&metrics) >= passes + 12).then_some(()) },
    )
    .await
    .unwrap();
    assert!(
        support::stream_messages(&setup.contract).await <= settled + 1,
        "announced again despite the record"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_status_change_seen_while_nats_was_down_is_published_after() {
    let mut setup = setup().await;
    let run_id = setup.emulator.create_run(REPO, one_job()).unwrap();
    let contract = Contract::new(connect(&setup.nats).await);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        poll_loop(&setup.emulator, &contract, Duration::from_secs(300)).run(shutdown.clone()),
    );
    support::read_events(&setup.contract, "reader", 1).await;
    setup.nats.kill();
    setup.emulator.cancel_run(run_id).unwrap();
    // The poll sees the cancellation while nothing can be published.
    let seen = setup.emulator.requests().len();
    eventually(
        "a pass after the cancel",
        Duration::from_secs(10),
        || async { (setup.emulator.requests().len() > seen + 2).then_some(()) },
    )
    .await
    .unwrap();
    setup.nats.restart().unwrap();
    let events = support::read_events(&setup.contract, "reader", 1).await;
    let JobEvent::Status(change) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(change.status, JobStatus::Cancelled as i32);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_restarted_poller_reports_jobs_that_left_the_queue_while_it_was_down() {
    let setup = setup().await;
    let run_id = setup.emulator.create_run(REPO, one_job()).unwrap();
    let shutdown = CancellationToken::new();
    let first = tokio::spawn(
        poll_loop(&setup.emulator, &setup.contract, Duration::from_secs(300)).run(shutdown.clone()),
    );
    let events = support::read_events(&setup.contract, "reader", 1).await;
    let JobEvent::Queued(job) = &events[0] else {
        panic!("{events:?}")
    };
    shutdown.cancel();
    first.await.unwrap().unwrap();
    // The scheduler took it; while the poller is down, the run is
    // cancelled and leaves both lists.
    let records = setup.contract.job_states().await.unwrap();
    records
        .create(&job.job_id.to_string(), &record_of(job.clone()))
        .await
        .unwrap();
    setup.emulator.cancel_run(run_id).unwrap();

    let shutdown = CancellationToken::new();
    let second = tokio::spawn(
        poll_loop(&setup.emulator, &setup.contract, Duration::from_secs(300)).run(shutdown.clone()),
    );
    let events = support::read_events(&setup.contract, "reader", 1).await;
    let JobEvent::Status(change) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        (change.job_id, change.status),
        (job.job_id, JobStatus::Cancelled as i32)
    );
    shutdown.cancel();
    second.await.unwrap().unwrap();
}
