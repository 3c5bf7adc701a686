//! Scheduler benchmarks against the real local Slurm, NATS and the GitHub
//! emulator (run with `cargo bench -p gha-scheduler --bench burst`):
//!
//! 1. A burst of 70 `QueuedJob`s (one workflow) -> 70 `sbatch`: time from
//!    the last publish to the last submission, and per-job publish ->
//!    submitted p50/p99, with bounded concurrent submission and with a
//!    strictly sequential baseline, in the same run.
//! 2. Steady state with 1,000 tracked jobs: what one reconcile pass costs
//!    (Slurm queries, GitHub requests, wall and CPU time) and the memory
//!    the records take.
//!
//! The jobs are held pending (`--begin=now+1hour`): submission is what is
//! measured, and nothing runs on the node meanwhile.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use gha_proto::v1::JobPhase;
use support::{Harness, Options, POLICY};

const BURST: i64 = 70;
const TRACKED: i64 = 1000;

fn pending_policy() -> String {
    POLICY.replace(
        "image = \"/images/test\"",
        "image = \"/images/test\"\nsbatch_extra = { begin = \"now+1hour\" }",
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Burst {
    last_publish_to_last_submit_ms: i64,
    p50_ms: i64,
    p99_ms: i64,
    max_ms: i64,
}

async fn burst(concurrency: usize) -> Burst {
    let harness = Harness::start(Options {
        policy: pending_policy(),
        submit_concurrency: concurrency,
        reconcile_interval: Duration::from_secs(30),
        ..Options::default()
    })
    .await;
    let mut published = Vec::new();
    for job_id in 1..=BURST {
        let job = harness.job(job_id);
        harness.publish(&job).await;
        published.push(now_ms());
    }
    let last_publish = *published.last().unwrap();
    let mut latencies = Vec::new();
    let mut last_submit = 0;
    for job_id in 1..=BURST {
        let state = harness.wait_phase(job_id, JobPhase::Submitted).await;
        latencies.push(state.phase_since_unix_ms - published[(job_id - 1) as usize]);
        last_submit = last_submit.max(state.phase_since_unix_ms);
    }
    let slurm = harness.slurm_jobs();
    assert_eq!(slurm.len(), BURST as usize, "one Slurm job per job");
    latencies.sort_unstable();
    Burst {
        last_publish_to_last_submit_ms: last_submit - last_publish,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: *latencies.last().unwrap(),
    }
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn steady_state() {
    let rss_before = rss_kib();
    let harness = Harness::start(Options {
        policy: pending_policy(),
        reconcile_interval: Duration::from_secs(3600),
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    for job_id in 1..=TRACKED {
        harness.publish(&harness.job(job_id)).await;
    }
    for job_id in 1..=TRACKED {
        harness.wait_phase(job_id, JobPhase::Submitted).await;
    }
    let fill = started.elapsed();
    let rss_tracked = rss_kib();
    let engine = harness.engine.clone().unwrap();
    let passes: u32 = 20;
    let cpu_before = cpu_seconds();
    let wall = Instant::now();
    let mut queries = 0;
    let mut actions = 0;
    let mut github = 0;
    for _ in 0..passes {
        let pass = gha_scheduler::reconcile::pass(&engine).await.expect("pass");
        queries += pass.slurm_queries;
        actions += pass.actions;
        github += pass.github_requests;
    }
    let wall = wall.elapsed() / passes;
    let cpu = (cpu_seconds() - cpu_before) / passes as f64;
    println!("steady state, {TRACKED} tracked jobs (all pending in Slurm):");
    println!("  submitting all {TRACKED}: {:.1} s", fill.as_secs_f64());
    println!(
        "  per reconcile pass: {} squeue call(s), {:.1} GitHub request(s) (the runner sweep, every 20th pass), {} action(s), wall {:.0} ms, scheduler CPU {:.0} ms",
        queries / passes,
        f64::from(github) / f64::from(passes),
        actions / passes,
        wall.as_secs_f64() * 1000.0,
        cpu * 1000.0
    );
    println!(
        "  resident memory: {} MiB before the harness, {} MiB with {TRACKED} records (harness, emulator and NATS client included)",
        rss_before / 1024,
        rss_tracked / 1024
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        // `cargo test` runs benches once in test mode: skip the heavy work.
        return;
    }
    println!("burst of {BURST} QueuedJobs -> {BURST} sbatch (real Slurm):");
    let concurrent = burst(16).await;
    let sequential = burst(1).await;
    for (name, run) in [
        ("concurrent (16)", &concurrent),
        ("sequential (1)", &sequential),
    ] {
        println!(
            "  {name:<16} last publish -> last submission {:>5} ms; publish -> submitted p50 {:>5} ms, p99 {:>5} ms, max {:>5} ms",
            run.last_publish_to_last_submit_ms, run.p50_ms, run.p99_ms, run.max_ms
        );
    }
    println!(
        "  concurrent vs sequential: whole burst {:.1}x faster, p99 {:.1}x lower",
        sequential.last_publish_to_last_submit_ms as f64
            / concurrent.last_publish_to_last_submit_ms.max(1) as f64,
        sequential.p99_ms as f64 / concurrent.p99_ms.max(1) as f64
    );
    steady_state().await;
}
