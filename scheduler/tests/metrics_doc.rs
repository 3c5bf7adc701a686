//! The `gha-scheduler run` binary's `/metrics` is what `docs/metrics.md`
//! says, both ways, and its gauges follow a job on the local Slurm: queued,
//! launching (JIT config minted), running (the runner took it), with the
//! queued -> running time observed once for the job's pool.

use std::time::Duration;

use gha_proto::v1::{JobPhase, RunnerEvent, RunnerEventKind};
use gha_testkit::eventually;
use gha_testkit::metrics_doc::{assert_documented, free_loopback_addr, sample_value, scrape};

mod support;
use support::{Harness, Options};

fn value(text: &str, series: &str) -> f64 {
    sample_value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_documented_and_follow_a_job_to_running() {
    let harness = Harness::start(Options {
        launcher_mode: "claim-hold",
        in_process: false,
        ..Options::default()
    })
    .await;
    let admin = free_loopback_addr();
    let token = harness.reports.path().join("github-token");
    std::fs::write(&token, harness.emulator.token()).unwrap();
    let args = [
        "--github-token-file".to_owned(),
        token.display().to_string(),
        "--admin-listen".to_owned(),
        admin.to_string(),
    ];
    let _scheduler = harness.spawn_binary_with(None, &args);

    let text = scrape(admin, Duration::from_secs(30)).await;
    assert_documented("gha-scheduler", &text);
    // The policy's one pool is there before any job.
    let pool = "pool=\"test\"";
    assert_eq!(
        value(
            &text,
            &format!("gha_scheduler_jobs{{{pool},phase=\"queued\"}}")
        ),
        0.0
    );
    assert_eq!(
        value(
            &text,
            &format!("gha_scheduler_queued_to_running_seconds_count{{{pool}}}")
        ),
        0.0
    );

    let mut job = harness.job(1);
    job.created_at_unix_ms = gha_scheduler::engine::now_ms();
    harness.publish(&job).await;
    let launching = harness.wait_phase(1, JobPhase::Launching).await;
    let text = eventually(
        "the launching job on /metrics",
        Duration::from_secs(10),
        || async {
            let text = scrape(admin, Duration::from_secs(5)).await;
            let launching = sample_value(
                &text,
                &format!("gha_scheduler_jobs{{{pool},phase=\"launching\"}}"),
            )?;
            let slurm_running = sample_value(&text, "gha_scheduler_slurm_jobs{state=\"RUNNING\"}")?;
            (launching == 1.0 && slurm_running >= 1.0).then_some(text)
        },
    )
    .await
    .expect("the gauges see the job");
    assert_eq!(value(&text, "gha_scheduler_nats_connected"), 1.0);
    assert_eq!(
        value(
            &text,
            "gha_scheduler_jit_configs_total{kind=\"jit_config_refusal_unspecified\"}"
        ),
        1.0
    );
    assert!(
        value(
            &text,
            &format!("gha_scheduler_oldest_waiting_seconds{{{pool}}}")
        ) > 0.0
    );
    assert!(
        value(
            &text,
            "gha_scheduler_reconcile_passes_total{outcome=\"ok\"}"
        ) >= 1.0
    );

    harness
        .contract
        .publish(&RunnerEvent {
            slurm_job_id: launching.slurm_job_id,
            job_id: 1,
            kind: RunnerEventKind::JobStarted as i32,
            sequence: 1,
            ..RunnerEvent::default()
        })
        .await
        .unwrap();
    harness.wait_phase(1, JobPhase::Running).await;
    let text = eventually(
        "the running job on /metrics",
        Duration::from_secs(10),
        || async {
            let text = scrape(admin, Duration::from_secs(5)).await;
            let running = sample_value(
                &text,
                &format!("gha_scheduler_jobs{{{pool},phase=\"running\"}}"),
            )?;
            (running == 1.0).then_some(text)
        },
    )
    .await
    .expect("the job is running on /metrics");
    assert_eq!(
        value(
            &text,
            &format!("gha_scheduler_queued_to_running_seconds_count{{{pool}}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            &format!("gha_scheduler_oldest_waiting_seconds{{{pool}}}")
        ),
        0.0
    );
    assert_documented("gha-scheduler", &text);
}
