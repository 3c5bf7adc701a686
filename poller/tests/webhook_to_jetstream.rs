//! Webhooks from the GitHub emulator reach JetStream through the poller's
//! endpoint, exactly once, and only for jobs the policy accepts.

use std::sync::Arc;
use std::time::Duration;

use gha_github::GitHubClient;
use gha_poller::metrics::PollerMetrics;
use gha_poller::policy::JobPolicy;
use gha_poller::webhook::WebhookReceiver;
use gha_poller::webhook_signature::WebhookSecrets;
use gha_proto::v1::JobStatus;
use gha_proto::{Contract, JobEvent};

mod support;
use gha_testkit::github::{Fault, FaultKind, GitHubEmulator, JobSpec, WorkflowSpec, signature_256};
use gha_testkit::{NatsServer, eventually};

const SECRET: &str = "webhook-secret";
const REPO: &str = "acme/widgets";

struct Setup {
    _nats: NatsServer,
    emulator: GitHubEmulator,
    contract: Contract,
    url: String,
}

async fn setup() -> Setup {
    let nats = NatsServer::start().unwrap();
    let contract = Contract::new(async_nats::connect(nats.url()).await.unwrap());
    contract.ensure_topology().await.unwrap();
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo(REPO);
    let github = Arc::new(GitHubClient::new(
        &support::endpoint(&emulator),
        emulator.token().to_string().into(),
    ));
    let receiver = Arc::new(WebhookReceiver::new(
        WebhookSecrets::from_lines(&format!("old-secret\n{SECRET}\n")),
        JobPolicy::default(),
        contract.clone(),
        vec![github],
        PollerMetrics::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let app = receiver.router("/webhook", 64 * 1024);
    tokio::spawn(async move { axum::serve(listener, app).await });
    emulator.set_webhook(&url, Some(SECRET));
    Setup {
        _nats: nats,
        emulator,
        contract,
        url,
    }
}

/// Waits until every delivery so far has been answered; returns the
/// statuses of their last attempts.
async fn settled(emulator: &GitHubEmulator, count: usize) -> Vec<u16> {
    eventually(
        "webhook deliveries answered",
        Duration::from_secs(10),
        || async {
            let deliveries = emulator.deliveries();
            let answered: Vec<u16> = deliveries
                .iter()
                .filter_map(|d| d.attempts.last().and_then(|a| a.status))
                .collect();
            (deliveries.len() >= count && answered.len() == deliveries.len()).then_some(answered)
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_queued_job_is_published_once_even_when_redelivered() {
    let setup = setup().await;
    let run_id = setup
        .emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["self-hosted", "slurm"])]),
        )
        .unwrap();
    assert_eq!(settled(&setup.emulator, 1).await, [202]);
    let events = support::read_events(&setup.contract, "test-reader", 1).await;
    let JobEvent::Queued(job) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(job.run_id, run_id as i64);
    assert_eq!(job.repository, REPO);
    assert_eq!(job.labels, ["self-hosted", "slurm"]);

    let delivery = setup.emulator.deliveries()[0].id.clone();
    assert!(setup.emulator.redeliver(&delivery));
    eventually(
        "the redelivery answered",
        Duration::from_secs(10),
        || async { (setup.emulator.deliveries()[0].attempts.len() == 2).then_some(()) },
    )
    .await
    .unwrap();
    assert_eq!(support::stream_messages(&setup.contract).await, 1);
}

#[tokio::test]
async fn jobs_without_the_marker_or_from_forks_are_not_published() {
    let setup = setup().await;
    setup
        .emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("hosted", &["ubuntu-latest"])]),
        )
        .unwrap();
    let mut fork = WorkflowSpec::new(
        "PR",
        vec![JobSpec::new("untrusted", &["self-hosted", "slurm"])],
    );
    fork.from_fork = true;
    fork.event = "pull_request".into();
    setup.emulator.create_run(REPO, fork).unwrap();
    assert_eq!(settled(&setup.emulator, 2).await, [202, 202]);
    assert_eq!(support::stream_messages(&setup.contract).await, 0);
}

#[tokio::test]
async fn cancelling_a_run_publishes_the_status_change_after_the_job() {
    let setup = setup().await;
    let run_id = setup
        .emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
        )
        .unwrap();
    setup.emulator.cancel_run(run_id).unwrap();
    settled(&setup.emulator, 2).await;
    let events = support::read_events(&setup.contract, "test-reader", 2).await;
    assert!(matches!(&events[0], JobEvent::Queued(_)));
    let JobEvent::Status(change) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(change.status, JobStatus::Cancelled as i32);
    assert_eq!(change.conclusion, "cancelled");
}

#[tokio::test]
async fn bad_signatures_are_401_and_oversized_bodies_413() {
    let setup = setup().await;
    let client = reqwest::Client::new();
    let body = r#"{"action":"queued"}"#;
    let send = |signature: Option<String>, body: String| {
        let mut request = client
            .post(&setup.url)
            .header("X-GitHub-Event", "workflow_job")
            .header("X-GitHub-Delivery", uuid_like())
            .body(body);
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send()
    };
    let wrong = send(
        Some(signature_256(b"not-the-secret", body.as_bytes())),
        body.into(),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(send(None, body.into()).await.unwrap().status(), 401);
    let big = "x".repeat(128 * 1024);
    let oversized = send(Some(signature_256(SECRET.as_bytes(), big.as_bytes())), big)
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    let ping = client
        .post(&setup.url)
        .header("X-GitHub-Event", "ping")
        .header(
            "X-Hub-Signature-256",
            signature_256(SECRET.as_bytes(), b"{}"),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    assert_eq!(support::stream_messages(&setup.contract).await, 0);
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test]
async fn a_run_whose_fork_was_deleted_is_refused() {
    let setup = setup().await;
    let mut fork = WorkflowSpec::new("PR", vec![JobSpec::new("untrusted", &["slurm"])]);
    fork.from_fork = true;
    fork.fork_deleted = true;
    fork.event = "pull_request".into();
    setup.emulator.create_run(REPO, fork).unwrap();
    assert_eq!(settled(&setup.emulator, 1).await, [202]);
    assert_eq!(
        support::stream_messages(&setup.contract).await,
        0,
        "head_repository null: unknown counts as a fork"
    );
}

#[tokio::test]
async fn a_run_lookup_answered_304_is_refused() {
    let setup = setup().await;
    setup.emulator.add_fault(Fault::on(
        &format!("/repos/{REPO}/actions/runs/"),
        FaultKind::Status(304),
        None,
    ));
    setup
        .emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
        )
        .unwrap();
    assert_eq!(settled(&setup.emulator, 1).await, [202]);
    assert_eq!(
        support::stream_messages(&setup.contract).await,
        0,
        "a lookup that says nothing fails closed"
    );
}
