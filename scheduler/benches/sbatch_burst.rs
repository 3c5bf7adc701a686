//! The Slurm CLI adapter under a 70-job burst against the real single-node
//! Slurm: strictly sequential `sbatch` (the baseline) beside concurrent
//! submission with a bound, then one `squeue` listing all of them and a
//! verified `scancel` of each. Jobs are submitted held (`--hold`), so the
//! figures are Slurm's acceptance of a job, not its start, and nothing runs.
//!
//! `cargo bench -p gha-scheduler --bench sbatch_burst [-- JOBS [BOUND...]]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use gha_scheduler::slurm::cli::{SlurmCli, SlurmCliConfig};
use gha_scheduler::slurm::{BatchSystem, Submission, squeue};
use gha_testkit::Slurm;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn submission(prefix: &str, n: usize) -> Submission {
    Submission {
        name: format!("{prefix}{n}-1"),
        comment: format!("bench-{n}"),
        placement_args: [
            "--hold",
            "--cpus-per-task=1",
            "--mem=64M",
            "--time=5",
            "--output=/dev/null",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
        signal_grace_seconds: 10,
        env: vec![("GHA_JOB_ID".into(), n.to_string())],
        secret_env: Vec::new(),
        script: "#!/bin/sh\ntrue\n".into(),
        output: "/dev/null".into(),
    }
}

/// Submits `jobs` jobs, at most `bound` at once; returns the whole burst's
/// time, each submission's latency (from the burst's start, as if all were
/// queued at once) and the ids.
async fn burst(
    cli: &Arc<SlurmCli>,
    prefix: &str,
    jobs: usize,
    bound: usize,
) -> (Duration, Vec<Duration>, Vec<u64>) {
    let permits = Arc::new(Semaphore::new(bound));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..jobs {
        let cli = Arc::clone(cli);
        let permits = Arc::clone(&permits);
        let job = submission(prefix, n);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            let id = cli.submit(&job).await.expect("sbatch");
            (start.elapsed(), id)
        });
    }
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (latency, id) = done.unwrap();
        latencies.push(latency);
        ids.push(id);
    }
    let total = start.elapsed();
    latencies.sort();
    (total, latencies, ids)
}

async fn clean_up(cli: &SlurmCli, prefix: &str, ids: &[u64]) -> (Duration, Duration) {
    let start = Instant::now();
    let listed = cli.list(prefix).await.expect("squeue");
    let list_time = start.elapsed();
    assert_eq!(
        listed.len(),
        ids.len(),
        "squeue lists every job of the burst"
    );
    let start = Instant::now();
    for id in ids {
        cli.cancel(*id).await.expect("scancel");
    }
    (list_time, start.elapsed() / ids.len().max(1) as u32)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let jobs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(70);
    let bounds: Vec<usize> = match args.get(1..) {
        Some(rest) if !rest.is_empty() => rest.iter().filter_map(|a| a.parse().ok()).collect(),
        _ => vec![4, 8, 16],
    };
    let slurm = Slurm::shared().expect("the local Slurm");
    let cli = Arc::new(SlurmCli::new(SlurmCliConfig {
        env: vec![("SLURM_CONF".into(), slurm.conf().display().to_string())],
        ..SlurmCliConfig::default()
    }));
    println!("{jobs} held jobs per burst; latency counted from the burst's start");
    println!("| submission | whole burst | p50 | p99 | max | vs sequential |");
    println!("|---|---|---|---|---|---|");
    let mut baseline = None;
    let mut cleanups = Vec::new();
    for bound in std::iter::once(1).chain(bounds) {
        let prefix = format!("gha-bench{}-b{bound}-", std::process::id());
        let (total, latencies, ids) = burst(&cli, &prefix, jobs, bound).await;
        let base = *baseline.get_or_insert(total);
        println!(
            "| {} | {} | {} | {} | {} | {:.2}x |",
            if bound == 1 {
                "sequential (baseline)".to_string()
            } else {
                format!("concurrent, bound {bound}")
            },
            ms(total),
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap()),
            base.as_secs_f64() / total.as_secs_f64(),
        );
        let (list_time, cancel_each) = clean_up(&cli, &prefix, &ids).await;
        cleanups.push(format!(
            "bound {bound}: one squeue listing {} jobs {}, verified scancel {} each",
            ids.len(),
            ms(list_time),
            ms(cancel_each)
        ));
    }

    println!();
    for line in cleanups {
        println!("{line}");
    }

    // Parsing a 1,000-job squeue answer, the steady-state reconcile's read.
    let text: String = (0..1000)
        .map(|n| format!("{n}|PENDING|gha-{n}-1|corr-{n}||Priority\n"))
        .collect();
    let start = Instant::now();
    let rounds = 200;
    for _ in 0..rounds {
        let (jobs, _) = squeue::parse(&text);
        assert_eq!(jobs.len(), 1000);
    }
    println!(
        "parse of 1,000 squeue lines: {} per parse",
        ms(start.elapsed() / rounds)
    );
}
