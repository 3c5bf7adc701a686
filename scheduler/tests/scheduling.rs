//! The scheduler against real NATS, the local Slurm and the GitHub
//! emulator: demand in, exactly one Slurm job per job out, claims checked,
//! withdrawn and resubmitted as demand and Slurm change.

mod support;

use std::time::Duration;

use gha_proto::v1::{JobPhase, JobStatus};
use support::{Harness, Options, POLICY};

/// A pool whose jobs stay pending for an hour (`--begin=now+1hour`).
fn pending_policy() -> String {
    POLICY.replace(
        "image = \"/images/test\"",
        "image = \"/images/test\"\nsbatch_extra = { begin = \"now+1hour\" }",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_redelivered_demand_gives_exactly_one_slurm_job_per_job() {
    let harness = Harness::start(Options {
        policy: pending_policy(),
        ..Options::default()
    })
    .await;
    let jobs: Vec<i64> = (1..=12).collect();
    for &job_id in &jobs {
        let job = harness.job(job_id);
        harness.publish(&job).await;
        // Also past JetStream's de-duplication (no Nats-Msg-Id), as a
        // redelivery or a second poller would bring it.
        harness.publish_raw(&job).await;
    }
    for &job_id in &jobs {
        let state = harness.wait_phase(job_id, JobPhase::Submitted).await;
        assert_eq!(state.attempt, 1);
        assert_eq!(
            state.slurm_job_name,
            format!("{}-{job_id}-1", harness.prefix)
        );
        let slurm = harness.slurm_jobs_for(job_id);
        assert_eq!(slurm.len(), 1, "job {job_id}: {slurm:?}");
        assert_eq!(slurm[0].0, state.slurm_job_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_on_github_while_pending_in_slurm_is_withdrawn() {
    let harness = Harness::start(Options {
        policy: pending_policy(),
        ..Options::default()
    })
    .await;
    harness.publish(&harness.job(1)).await;
    harness.publish(&harness.job(2)).await;
    let submitted = harness.wait_phase(1, JobPhase::Submitted).await;
    harness.wait_phase(2, JobPhase::Submitted).await;

    harness.publish_status(1, JobStatus::Cancelled).await;
    let withdrawn = harness.wait_phase(1, JobPhase::Withdrawn).await;
    assert!(
        withdrawn.reason.contains("left queued"),
        "{}",
        withdrawn.reason
    );
    let state = harness
        .slurm
        .job_state(submitted.slurm_job_id)
        .expect("squeue");
    assert_eq!(state.as_deref(), Some("CANCELLED"));
    // The other job keeps its Slurm job.
    let other = harness.state(2).await.unwrap();
    assert_eq!(other.phase(), JobPhase::Submitted);
    assert_eq!(
        harness
            .slurm
            .job_state(other.slurm_job_id)
            .unwrap()
            .as_deref(),
        Some("PENDING")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demand_gone_before_submission_never_reaches_slurm() {
    let harness = Harness::start(Options {
        policy: POLICY.replace("[defaults]", "[defaults]\nmax_runners = 1"),
        launcher_mode: "hold",
        ..Options::default()
    })
    .await;
    harness.publish(&harness.job(1)).await;
    harness.wait_phase(1, JobPhase::Submitted).await;
    // Capped at one runner: job 2 waits for capacity, then its demand goes.
    harness.publish(&harness.job(2)).await;
    harness.wait_phase(2, JobPhase::Queued).await;
    harness.publish_status(2, JobStatus::InProgress).await;
    harness.wait_phase(2, JobPhase::Withdrawn).await;
    assert!(harness.slurm_jobs_for(2).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_presenting_its_claim_gets_one_jit_config() {
    let (harness, submitted, report) = Harness::one_job_launched(Options {
        launcher_mode: "claim-hold",
        ..Options::default()
    })
    .await;
    assert_eq!(
        report["refusal"], "JIT_CONFIG_REFUSAL_UNSPECIFIED",
        "{report}"
    );
    assert_eq!(report["got_config"], true);
    let runner_name = format!("{}-{}", harness.prefix, submitted.slurm_job_id);
    assert_eq!(report["runner_name"], runner_name.as_str());
    assert_eq!(report["path_set"], true);
    let state = harness
        .wait_for(1, "runner recorded", |state| state.runner_id != 0)
        .await;
    assert_eq!(state.phase(), JobPhase::Launching);
    assert_eq!(state.runner_name, runner_name);
    assert!(
        harness
            .emulator
            .runners()
            .iter()
            .any(|runner| runner.name == runner_name),
        "the runner is registered on GitHub"
    );

    // The same claim again (a replay) is refused.
    let claim = report["claim"].as_str().unwrap().to_owned();
    let reply = harness
        .contract
        .request_jit_config(
            &gha_proto::v1::JitConfigRequest {
                slurm_job_id: submitted.slurm_job_id,
                job_id: 1,
                claim,
                hostname: "replay".into(),
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.refusal(),
        gha_proto::v1::JitConfigRefusal::AlreadyClaimed
    );
    assert!(reply.encoded_jit_config.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_claim_is_refused_and_mints_nothing() {
    let (harness, _, report) = Harness::one_job_launched(Options {
        launcher_mode: "wrong-claim",
        ..Options::default()
    })
    .await;
    assert_eq!(
        report["refusal"], "JIT_CONFIG_REFUSAL_BAD_CLAIM",
        "{report}"
    );
    assert_eq!(report["got_config"], false);
    assert!(harness.emulator.runners().is_empty());
    assert_eq!(harness.state(1).await.unwrap().runner_id, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slurm_job_that_dies_before_its_runner_took_work_is_resubmitted_once() {
    let (harness, first, _) = Harness::one_job_launched(Options {
        launcher_mode: "hold",
        ..Options::default()
    })
    .await;
    // An administrator cancels the running job (as a node failure would end it).
    let status = harness
        .slurm
        .command("scancel")
        .arg(first.slurm_job_id.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let second = harness
        .wait_for(1, "attempt 2 submitted", |state| {
            state.attempt == 2 && state.phase() == JobPhase::Submitted
        })
        .await;
    assert_ne!(second.slurm_job_id, first.slurm_job_id);
    assert!(second.reason.is_empty());
    let jobs = harness.slurm_jobs_for(1);
    let live: Vec<_> = jobs
        .iter()
        .filter(|(_, _, state)| state == "PENDING" || state == "RUNNING")
        .collect();
    assert_eq!(live.len(), 1, "{jobs:?}");
    assert_eq!(live[0].1, format!("{}-1-2", harness.prefix));
}

/// An `sbatch` that misbehaves on its first call: `after` submits for real
/// and then reports a failure (as a timeout between slurmctld and sbatch
/// does); `before` fails without submitting. Later calls are the real one.
fn flaky_sbatch(dir: &std::path::Path, mode: &str) -> std::path::PathBuf {
    let path = dir.join(format!("sbatch-{mode}"));
    let script = format!(
        r#"#!/bin/bash
calls="{dir}/sbatch-{mode}.calls"
echo "$*" >> "$calls"
if [ "$(wc -l < "$calls")" -gt 1 ]; then exec sbatch "$@"; fi
if [ "{mode}" = after ]; then sbatch "$@" > /dev/null || exit 2; fi
echo "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation" >&2
exit 1
"#,
        dir = dir.display()
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn flaky_sbatch_gives_one_slurm_job(mode: &str) -> (Harness, usize) {
    let dir = tempfile::tempdir().unwrap().keep();
    let harness = Harness::start(Options {
        policy: pending_policy(),
        sbatch: Some(flaky_sbatch(&dir, mode)),
        ..Options::default()
    })
    .await;
    harness.publish(&harness.job(1)).await;
    let state = harness.wait_phase(1, JobPhase::Submitted).await;
    let slurm = harness.slurm_jobs_for(1);
    assert_eq!(slurm.len(), 1, "{slurm:?}");
    assert_eq!(slurm[0].0, state.slurm_job_id);
    assert_eq!(state.attempt, 1, "one attempt, whatever sbatch said");
    let calls = std::fs::read_to_string(dir.join(format!("sbatch-{mode}.calls")))
        .unwrap()
        .lines()
        .count();
    std::fs::remove_dir_all(dir).ok();
    (harness, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sbatch_that_fails_after_creating_the_job_leaves_no_duplicate() {
    let (_harness, calls) = flaky_sbatch_gives_one_slurm_job("after").await;
    assert_eq!(calls, 1, "found by name, not submitted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sbatch_that_fails_before_creating_the_job_is_retried() {
    let (_harness, calls) = flaky_sbatch_gives_one_slurm_job("before").await;
    assert_eq!(calls, 2, "looked up, not found, submitted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_cap_two_repositories_share_capacity_fairly() {
    let harness = Harness::start(Options {
        policy: POLICY.replace("[defaults]", "[defaults]\nmax_runners = 2"),
        launcher_mode: "hold",
        ..Options::default()
    })
    .await;
    // A busy repository queues four jobs before a quiet one queues two.
    for job_id in 1..=4 {
        harness.publish(&harness.job_in("org/busy", job_id)).await;
    }
    harness.wait_phase(1, JobPhase::Submitted).await;
    harness.wait_phase(2, JobPhase::Submitted).await;
    for job_id in [11, 12] {
        harness.publish(&harness.job_in("org/quiet", job_id)).await;
    }
    harness.wait_phase(12, JobPhase::Queued).await;

    // Each finished job frees one slot; the slots alternate between the
    // repositories, oldest first within each.
    let mut order = Vec::new();
    for finished in [1, 2, 11, 3] {
        harness.publish_status(finished, JobStatus::Completed).await;
        harness.wait_phase(finished, JobPhase::Withdrawn).await;
        let started = harness
            .wait_for_any([3, 4, 11, 12], &order, JobPhase::Submitted)
            .await;
        order.push(started);
    }
    assert_eq!(order, [11, 3, 12, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_took_work_is_done_when_its_slurm_job_ends_not_resubmitted() {
    use gha_proto::v1::{RunnerEvent, RunnerEventKind};
    let (harness, submitted, _) = Harness::one_job_launched(Options {
        launcher_mode: "hold",
        ..Options::default()
    })
    .await;
    let event = |slurm_job_id, kind: RunnerEventKind, sequence| RunnerEvent {
        slurm_job_id,
        job_id: 1,
        kind: kind as i32,
        sequence,
        ..RunnerEvent::default()
    };
    harness
        .contract
        .publish(&event(
            submitted.slurm_job_id + 100_000,
            RunnerEventKind::JobStarted,
            1,
        ))
        .await
        .unwrap();
    // ... this one's does.
    harness
        .contract
        .publish(&event(
            submitted.slurm_job_id,
            RunnerEventKind::JobStarted,
            1,
        ))
        .await
        .unwrap();
    harness.wait_phase(1, JobPhase::Running).await;

    harness
        .slurm
        .command("scancel")
        .arg(submitted.slurm_job_id.to_string())
        .status()
        .unwrap();
    let done = harness.wait_phase(1, JobPhase::Done).await;
    assert_eq!(done.attempt, 1);
    assert_eq!(harness.slurm_jobs_for(1).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_idle_runners_of_ours_are_deleted_and_others_left_alone() {
    let harness = Harness::start(Options {
        policy: pending_policy(),
        runner_sweep_every: 1,
        ..Options::default()
    })
    .await;
    let client = gha_github::GitHubClient::new(
        &support::github_endpoint(&harness.emulator),
        secrecy::SecretString::from(harness.emulator.token().to_owned()),
    );
    let ours = format!("{}-999999", harness.prefix);
    for name in [ours.as_str(), "someone-else-1"] {
        let _: serde_json::Value = client
            .post(
                &format!(
                    "/repos/{}/actions/runners/generate-jitconfig",
                    support::REPO
                ),
                &serde_json::json!({"name": name, "runner_group_id": 1, "labels": ["slurm"]}),
            )
            .await
            .unwrap();
    }
    // A job makes the repository a scope the sweep looks at.
    harness.publish(&harness.job(1)).await;
    harness.wait_phase(1, JobPhase::Submitted).await;
    gha_testkit::eventually(
        "our offline runner deleted",
        Duration::from_secs(30),
        || async {
            let names: Vec<String> = harness
                .emulator
                .runners()
                .into_iter()
                .map(|r| r.name)
                .collect();
            (!names.contains(&ours)).then_some(names)
        },
    )
    .await
    .map(|names| assert!(names.contains(&"someone-else-1".to_owned()), "{names:?}"))
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_pool_serves_is_recorded_with_its_reason_and_never_submitted() {
    let harness = Harness::start(Options::default()).await;
    let mut job = harness.job(1);
    job.labels = vec!["self-hosted".into(), "windows".into()];
    harness.publish(&job).await;
    let state = harness.wait_phase(1, JobPhase::Unplaceable).await;
    assert!(
        state.reason.contains("no pool serves labels"),
        "{}",
        state.reason
    );
    let mut too_big = harness.job(2);
    too_big.labels.push("cpu-64".into());
    harness.publish(&too_big).await;
    let state = harness.wait_phase(2, JobPhase::Unplaceable).await;
    assert!(state.reason.contains("cpu-64"), "{}", state.reason);
    assert_eq!(state.slurm_job_name, "");
    assert!(harness.slurm_jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_attempts_are_spent_the_job_fails_with_the_reason() {
    let (harness, submitted, _) = Harness::one_job_launched(Options {
        launcher_mode: "hold",
        max_attempts: 1,
        ..Options::default()
    })
    .await;
    harness
        .slurm
        .command("scancel")
        .arg(submitted.slurm_job_id.to_string())
        .status()
        .unwrap();
    let failed = harness.wait_phase(1, JobPhase::Failed).await;
    assert!(
        failed.reason.contains("1 attempts spent"),
        "{}",
        failed.reason
    );
    assert_eq!(harness.slurm_jobs_for(1).len(), 1);
}
