//! `gha-poller run` in poll-only mode against the emulator and a real
//! nats-server: demand appears in JetStream, its withdrawal follows, and a
//! secondary limit's retry-after is honoured.

use std::time::Duration;

use clap::Parser;
use gha_poller::Cli;
use gha_proto::v1::{JobStatus, JobStatusChange, QueuedJob};
use gha_proto::{Contract, JobEvent, topology};

mod support;
use gha_testkit::github::{
    EmulatorConfig, GitHubEmulator, JobSpec, RateLimitSettings, WorkflowSpec,
};
use gha_testkit::{NatsServer, eventually};
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/widgets";

struct Running {
    _nats: NatsServer,
    emulator: GitHubEmulator,
    contract: Contract,
    shutdown: CancellationToken,
    service: tokio::task::JoinHandle<anyhow::Result<()>>,
    _token: tempfile::NamedTempFile,
}

async fn start(rate_limits: RateLimitSettings) -> Running {
    let nats = NatsServer::start().unwrap();
    let contract = Contract::new(async_nats::connect(nats.url()).await.unwrap());
    let emulator = GitHubEmulator::start_with(EmulatorConfig {
        rate_limits,
        https: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator.add_repo(REPO);
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), emulator.token()).unwrap();
    let cli = Cli::try_parse_from([
        "gha-poller",
        "run",
        "--github-api-url",
        &emulator.url(),
        "--github-ca-file",
        emulator.ca().cert_file().to_str().unwrap(),
        "--token-file",
        token.path().to_str().unwrap(),
        "--repos",
        REPO,
        "--nats-url",
        &nats.url(),
        "--poll-interval",
        "1",
        "--busy-poll-interval",
        "1",
    ])
    .unwrap();
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(gha_poller::run(cli.validate().unwrap(), shutdown.clone()));
    Running {
        _nats: nats,
        emulator,
        contract,
        shutdown,
        service,
        _token: token,
    }
}

async fn next_events(contract: &Contract, count: usize) -> Vec<JobEvent> {
    eventually("the streams to exist", Duration::from_secs(10), || async {
        contract
            .jetstream()
            .get_stream(topology::JOBS_STREAM)
            .await
            .ok()
    })
    .await
    .unwrap();
    support::read_events(contract, "test-reader", count).await
}

#[tokio::test]
async fn polled_demand_and_its_withdrawal_reach_jetstream() {
    let running = start(RateLimitSettings::default()).await;
    let run_id = running
        .emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["self-hosted", "slurm"])]),
        )
        .unwrap();
    let events = next_events(&running.contract, 1).await;
    let JobEvent::Queued(QueuedJob { run_id: got, .. }) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(*got, run_id as i64);

    running.emulator.cancel_run(run_id).unwrap();
    let events = next_events(&running.contract, 1).await;
    let JobEvent::Status(JobStatusChange { status, .. }) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(*status, JobStatus::Cancelled as i32);

    running.shutdown.cancel();
    running.service.await.unwrap().unwrap();
}

#[tokio::test]
async fn no_request_is_sent_before_a_secondary_limits_retry_after() {
    let running = start(RateLimitSettings {
        retry_after: Duration::from_secs(2),
        ..RateLimitSettings::default()
    })
    .await;
    running.emulator.secondary_limit_storm(1);
    let requests = eventually(
        "a request after the refused one",
        Duration::from_secs(20),
        || async {
            let requests = running.emulator.requests();
            (requests.len() >= 2).then_some(requests)
        },
    )
    .await
    .unwrap();
    assert_eq!(requests[0].status, 403);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= chrono::Duration::seconds(2), "retried after {gap:?}");
    running.shutdown.cancel();
    running.service.await.unwrap().unwrap();
}
