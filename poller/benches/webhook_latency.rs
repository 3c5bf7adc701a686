//! Webhook in -> message acknowledged by JetStream, over 10,000 deliveries
//! on loopback against a real nats-server, beside the floor: the same
//! messages published straight to JetStream from the same process.
//!
//! `cargo bench -p gha-poller --bench webhook_latency [-- COUNT]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use gha_github::GitHubClient;
use gha_poller::metrics::PollerMetrics;
use gha_poller::policy::JobPolicy;
use gha_poller::webhook::WebhookReceiver;
use gha_poller::webhook_signature::WebhookSecrets;
use gha_proto::Contract;
use gha_proto::v1::QueuedJob;
use gha_testkit::NatsServer;
use gha_testkit::github::signature_256;

const SECRET: &str = "bench-secret";

fn payload(job_id: u64) -> String {
    serde_json::json!({
        "action": "queued",
        "workflow_job": {
            "id": job_id, "run_id": 12_000_000_000u64 + job_id, "run_attempt": 1,
            "status": "queued", "conclusion": null, "name": format!("build-{job_id}"),
            "workflow_name": "CI", "head_branch": "main", "head_sha": "0123456789abcdef0123456789abcdef01234567",
            "html_url": "https://github.com/acme/widgets/actions/runs/1/job/2",
            "created_at": "2026-11-28T09:00:00Z", "started_at": "2026-11-28T09:00:00Z",
            "labels": ["self-hosted", "slurm"], "runner_id": null, "runner_name": null,
            "runner_group_id": null, "runner_group_name": null, "steps": []
        },
        "repository": {"id": 700000001, "full_name": "acme/widgets", "owner": {"login": "acme"}, "fork": false},
        "sender": {"login": "acme"}
    })
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    println!(
        "{name:<34} n={:<6} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3
    );
    (p50, p99)
}

#[tokio::main]
async fn main() {
    let count: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(10_000);
    let nats = NatsServer::start().expect("nats-server");
    let contract = Contract::new(async_nats::connect(nats.url()).await.unwrap());
    contract.ensure_topology().await.unwrap();

    // Forks are allowed so no GitHub lookup is involved: this measures the
    // poller's own path (verify, parse, policy, publish, ack).
    let receiver = Arc::new(WebhookReceiver::new(
        WebhookSecrets::from_lines(SECRET),
        JobPolicy::new(Some("slurm"), None, true),
        contract.clone(),
        vec![Arc::new(GitHubClient::new(
            &gha_github::Endpoint::new("http://127.0.0.1:9", &gha_github::TlsRoots::platform())
                .unwrap(),
            "unused".to_string().into(),
        ))],
        PollerMetrics::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let app = receiver.router("/webhook", 1 << 20);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    // Warm up both paths.
    for job in 0..200 {
        let body = payload(job);
        http.post(&url)
            .header("X-GitHub-Event", "workflow_job")
            .header("X-GitHub-Delivery", format!("warm-{job}"))
            .header(
                "X-Hub-Signature-256",
                signature_256(SECRET.as_bytes(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
    }

    let mut floor = Vec::with_capacity(count as usize);
    for job in 0..count {
        let message = QueuedJob {
            job_id: (1_000_000 + job) as i64,
            run_attempt: 1,
            repository: "acme/widgets".into(),
            labels: vec!["self-hosted".into(), "slurm".into()],
            ..Default::default()
        };
        let start = Instant::now();
        contract.publish(&message).await.unwrap();
        floor.push(start.elapsed());
    }

    let mut webhook = Vec::with_capacity(count as usize);
    for job in 0..count {
        let body = payload(2_000_000 + job);
        let signature = signature_256(SECRET.as_bytes(), body.as_bytes());
        let start = Instant::now();
        let response = http
            .post(&url)
            .header("X-GitHub-Event", "workflow_job")
            .header("X-GitHub-Delivery", format!("d-{job}"))
            .header("X-Hub-Signature-256", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        webhook.push(start.elapsed());
        assert!(
            status.as_u16() == 202 && text == "published",
            "{status} {text}"
        );
    }

    println!("webhook in -> JetStream ack, {count} deliveries, loopback, 1 client");
    let (floor_p50, floor_p99) = report("floor: JetStream publish+ack", floor);
    let (p50, p99) = report("webhook -> JetStream ack", webhook);
    println!(
        "ratio to floor: p50 {:.2}x, p99 {:.2}x; target p99 < 5 ms: {}",
        p50.as_secs_f64() / floor_p50.as_secs_f64(),
        p99.as_secs_f64() / floor_p99.as_secs_f64(),
        if p99 < Duration::from_millis(5) {
            "met"
        } else {
            "NOT met"
        }
    );
}
