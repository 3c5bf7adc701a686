//! Poll-only mode under load: 100 watched repositories, 5 of them busy with
//! a 70-job workflow throughout (replaced by a fresh one every minute, so
//! new jobs keep appearing). Reports, scaled to an hour, the counted GitHub
//! requests of gha-poller's poll loop against its budget, its discovery
//! latency (job queued -> `QueuedJob` in JetStream), and side by side the
//! counted requests of a naive poller (no ETags, queued runs only, every
//! repository every 5 s) run in the same process against the same emulator.
//!
//! `cargo bench -p gha-poller --bench poll_budget [-- SECONDS]` (default 300)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gha_github::{Fetched, GitHubClient};
use gha_poller::cli::Watched;
use gha_poller::metrics::PollerMetrics;
use gha_poller::policy::JobPolicy;
use gha_poller::poll_loop::PollLoop;
use gha_proto::{Contract, JobEvent, topology};
use gha_testkit::NatsServer;
use gha_testkit::github::{GitHubEmulator, WorkflowSpec};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[path = "../tests/support/mod.rs"]
mod support;

const REPOS: usize = 100;
const BUSY: usize = 5;
const JOBS_PER_WORKFLOW: usize = 70;
const BUDGET_PER_HOUR: u32 = 2500;
const NAIVE_TOKEN: &str = "ghp_naive_poller_benchmark_token";

fn repo(i: usize) -> String {
    format!("acme/repo-{i:03}")
}

/// Starts a 70-job run in `repo`; records when each of its jobs was queued.
fn start_workflow(
    emulator: &GitHubEmulator,
    repo: &str,
    created: &Mutex<HashMap<i64, Instant>>,
) -> u64 {
    let run = emulator
        .create_run(
            repo,
            WorkflowSpec::fan_out(
                "matrix",
                JOBS_PER_WORKFLOW,
                &["self-hosted", "slurm"],
                vec![],
            ),
        )
        .unwrap();
    let now = Instant::now();
    let mut created = created.lock().unwrap();
    for job in emulator.run_jobs(run, false) {
        created.insert(job.id as i64, now);
    }
    run
}

/// The naive poller: every repository every 5 s, queued runs only, no
/// ETags. Returns how many jobs it saw queued (not deduplicated).
async fn naive_poller(client: GitHubClient, shutdown: CancellationToken) -> u64 {
    let mut seen = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return seen,
            _ = tick.tick() => {}
        }
        for i in 0..REPOS {
            let path = format!("/repos/{}/actions/runs?status=queued&per_page=100", repo(i));
            let Ok(Fetched::Fresh { value, .. }) = client.get::<Value>(&path, None).await else {
                continue;
            };
            for run in value["workflow_runs"].as_array().into_iter().flatten() {
                let path = format!(
                    "/repos/{}/actions/runs/{}/jobs?per_page=100",
                    repo(i),
                    run["id"]
                );
                if let Ok(Fetched::Fresh { value, .. }) = client.get::<Value>(&path, None).await {
                    seen += value["jobs"].as_array().map_or(0, |jobs| jobs.len() as u64);
                }
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(300);
    let nats = NatsServer::start().expect("nats-server");
    let contract = Contract::new(async_nats::connect(nats.url()).await.unwrap());
    contract.ensure_topology().await.unwrap();
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_token(NAIVE_TOKEN);
    for i in 0..REPOS {
        emulator.add_repo(&repo(i));
    }
    let created: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let mut runs: Vec<u64> = (0..BUSY)
        .map(|i| start_workflow(&emulator, &repo(i), &created))
        .collect();

    let shutdown = CancellationToken::new();
    let poll = PollLoop {
        github: Arc::new(GitHubClient::new(
            &support::endpoint(&emulator),
            emulator.token().to_string().into(),
        )),
        contract: contract.clone(),
        watched: Watched::Repos((0..REPOS).map(repo).collect()),
        policy: JobPolicy::default(),
        idle_interval: Duration::from_secs(30),
        busy_interval: Duration::from_secs(5),
        budget_per_hour: BUDGET_PER_HOUR,
        reannounce_after: gha_poller::poll_loop::REANNOUNCE_AFTER,
        metrics: PollerMetrics::default(),
        status: Default::default(),
    };
    let ours = tokio::spawn(poll.run(shutdown.clone()));
    let naive = tokio::spawn(naive_poller(
        GitHubClient::new(
            &support::endpoint(&emulator),
            NAIVE_TOKEN.to_string().into(),
        ),
        shutdown.clone(),
    ));

    // Discovery latency: queued (the bench created it) -> in JetStream.
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let reader = {
        let (contract, created, latencies, shutdown) = (
            contract.clone(),
            created.clone(),
            latencies.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let consumer = contract
                .consumer::<JobEvent>(
                    topology::JOBS_STREAM,
                    topology::durable_pull("bench", "bench", Duration::from_secs(30)),
                    100,
                )
                .await
                .unwrap();
            let mut messages = consumer.messages().await.unwrap();
            loop {
                let delivery = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    next = messages.next() => next.unwrap().unwrap(),
                };
                if let JobEvent::Queued(job) = &delivery.body
                    && let Some(at) = created.lock().unwrap().get(&job.job_id)
                {
                    latencies.lock().unwrap().push(at.elapsed());
                }
                delivery.ack().await.unwrap();
            }
        })
    };

    let start = Instant::now();
    // Counted requests are also reported from the end of the first minute
    // on: the steady state, without the start-up sweep of every repository.
    let mut after_first_minute: Option<(Instant, f64, f64)> = None;
    let mut minute = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        Duration::from_secs(60),
    );
    while start.elapsed() < Duration::from_secs(seconds) {
        let left = Duration::from_secs(seconds).saturating_sub(start.elapsed());
        tokio::select! {
            _ = minute.tick() => {
                if after_first_minute.is_none() {
                    let requests = emulator.requests();
                    let counted = |token: &str| requests.iter().filter(|r| r.token.as_deref() == Some(token) && r.status != 304).count() as f64;
                    after_first_minute = Some((Instant::now(), counted(emulator.token()), counted(NAIVE_TOKEN)));
                }
                for (i, run) in runs.iter_mut().enumerate() {
                    let _ = emulator.cancel_run(*run);
                    *run = start_workflow(&emulator, &repo(i), &created);
                }
            }
            _ = tokio::time::sleep(left) => {}
        }
    }
    let elapsed = start.elapsed();
    shutdown.cancel();
    ours.await.unwrap().unwrap();
    let naive_seen = naive.await.unwrap();
    reader.await.unwrap();

    let scale = 3600.0 / elapsed.as_secs_f64();
    let requests = emulator.requests();
    let counted = |token: &str| {
        requests
            .iter()
            .filter(|r| r.token.as_deref() == Some(token) && r.status != 304)
            .count() as f64
    };
    let free = requests
        .iter()
        .filter(|r| r.token.as_deref() == Some(emulator.token()) && r.status == 304)
        .count() as f64;
    let ours_counted = counted(emulator.token());
    let naive_counted = counted(NAIVE_TOKEN);
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_unstable();
    let jobs_created = created.lock().unwrap().len();

    println!(
        "poll-only, {REPOS} repositories, {BUSY} busy with {JOBS_PER_WORKFLOW}-job workflows (new one each minute), {:.0} s, scaled to an hour",
        elapsed.as_secs_f64()
    );
    println!(
        "gha-poller: counted requests {:>7.0}/h over the whole window (the one-off start-up sweep, 2 per repository, is scaled x{scale:.0} too), 304s {:>7.0}/h",
        ours_counted * scale,
        free * scale
    );
    if latencies.is_empty() {
        println!("gha-poller: no job discovered");
    } else {
        println!(
            "gha-poller: discovery latency p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} of {jobs_created} jobs published)",
            percentile(&latencies, 0.5).as_secs_f64(),
            percentile(&latencies, 0.99).as_secs_f64(),
            latencies.last().unwrap().as_secs_f64(),
            latencies.len()
        );
    }
    println!(
        "naive poller: counted requests {:>7.0}/h ({:.1}x gha-poller's; {naive_seen} job sightings)",
        naive_counted * scale,
        naive_counted / ours_counted.max(1.0)
    );
    if let Some((at, ours_before, naive_before)) = after_first_minute {
        let steady = 3600.0 / at.elapsed().as_secs_f64();
        let ours_steady = (ours_counted - ours_before) * steady;
        let naive_steady = (naive_counted - naive_before) * steady;
        println!(
            "steady state (after the first minute): gha-poller {ours_steady:.0}/h (budget {BUDGET_PER_HOUR}/h: {}), naive {naive_steady:.0}/h ({:.1}x)",
            if ours_steady <= f64::from(BUDGET_PER_HOUR) {
                "within"
            } else {
                "EXCEEDED"
            },
            naive_steady / ours_steady.max(1.0)
        );
    }
}
