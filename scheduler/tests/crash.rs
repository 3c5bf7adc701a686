//! Crash safety of the `gha-scheduler` binary: aborted (like SIGKILL) at
//! each step of a submission and during reconciliation, then restarted —
//! every job ends up with exactly one Slurm job.

mod support;

use std::time::Duration;

use gha_proto::v1::JobPhase;
use gha_scheduler::failpoint;
use gha_testkit::eventually_blocking;
use support::{Harness, Options, POLICY};

fn pending_options() -> Options {
    Options {
        policy: POLICY.replace(
            "image = \"/images/test\"",
            "image = \"/images/test\"\nsbatch_extra = { begin = \"now+1hour\" }",
        ),
        in_process: false,
        ..Options::default()
    }
}

/// Waits for a scheduler armed with a failpoint to abort.
fn wait_for_abort(child: &mut support::SchedulerProcess) {
    let status = eventually_blocking(
        "the scheduler aborts at its failpoint",
        Duration::from_secs(30),
        || child.try_wait().expect("try_wait"),
    )
    .expect("aborted");
    assert!(!status.success(), "it crashed, not exited: {status:?}");
}

async fn assert_exactly_one_slurm_job_each(harness: &Harness, jobs: &[i64]) {
    for &job_id in jobs {
        let state = harness.wait_phase(job_id, JobPhase::Submitted).await;
        let slurm = harness.slurm_jobs_for(job_id);
        assert_eq!(slurm.len(), 1, "job {job_id}: {slurm:?}");
        assert_eq!(slurm[0].0, state.slurm_job_id, "job {job_id}");
    }
}

async fn crash_at_then_restart(point: &str) {
    let harness = Harness::start(pending_options()).await;
    let jobs: Vec<i64> = (1..=5).collect();
    for &job_id in &jobs {
        harness.publish(&harness.job(job_id)).await;
    }
    let mut crashed = harness.spawn_binary(Some(point));
    wait_for_abort(&mut crashed);
    let logs = harness.binary_logs();
    assert!(
        logs.contains(&format!("failpoint {point} reached")),
        "{logs}"
    );

    let mut restarted = harness.spawn_binary(None);
    assert_exactly_one_slurm_job_each(&harness, &jobs).await;
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_durable_name_and_before_sbatch_submits_once() {
    crash_at_then_restart(failpoint::AFTER_SUBMITTING_WRITE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_sbatch_and_before_the_record_adopts_the_job() {
    crash_at_then_restart(failpoint::AFTER_SBATCH).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_reconcile_changes_nothing() {
    let harness = Harness::start(pending_options()).await;
    let first: Vec<i64> = (1..=4).collect();
    for &job_id in &first {
        harness.publish(&harness.job(job_id)).await;
    }
    let mut scheduler = harness.spawn_binary(None);
    assert_exactly_one_slurm_job_each(&harness, &first).await;
    scheduler.kill().unwrap();
    scheduler.wait().unwrap();

    // More demand arrives while the next one dies in its first reconcile.
    for job_id in 5..=8 {
        harness.publish(&harness.job(job_id)).await;
    }
    let mut crashed = harness.spawn_binary(Some(failpoint::DURING_RECONCILE));
    wait_for_abort(&mut crashed);

    let mut restarted = harness.spawn_binary(None);
    let all: Vec<i64> = (1..=8).collect();
    assert_exactly_one_slurm_job_each(&harness, &all).await;
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_the_middle_of_a_burst_then_restart_submits_each_job_once() {
    let harness = Harness::start(pending_options()).await;
    let jobs: Vec<i64> = (1..=20).collect();
    let mut scheduler = harness.spawn_binary(None);
    for &job_id in &jobs {
        harness.publish(&harness.job(job_id)).await;
    }
    // Killed as soon as the first submission is recorded: the rest are
    // somewhere between not started and submitted.
    harness.wait_phase(1, JobPhase::Submitted).await;
    scheduler.kill().unwrap();
    scheduler.wait().unwrap();

    let mut restarted = harness.spawn_binary(None);
    assert_exactly_one_slurm_job_each(&harness, &jobs).await;
    restarted.kill().unwrap();
    restarted.wait().unwrap();
}
