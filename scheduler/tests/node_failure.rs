//! A node failure under a running launcher: the Slurm job ends NODE_FAIL
//! before its runner took a job, so the scheduler submits the next attempt,
//! once. Its own test binary: it takes the shared node down for a moment,
//! and cargo runs test binaries one at a time.

mod support;

use gha_proto::v1::JobPhase;
use support::{Harness, Options};

/// Puts the node back even when the test fails.
struct NodeDown<'a> {
    harness: &'a Harness,
    node: String,
}

impl<'a> NodeDown<'a> {
    fn take_down(harness: &'a Harness) -> Self {
        let output = harness
            .slurm
            .command("sinfo")
            .args(["-h", "-o", "%N"])
            .output()
            .unwrap();
        let node = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        assert!(!node.is_empty());
        let status = harness
            .slurm
            .command("scontrol")
            .args([
                "update",
                &format!("NodeName={node}"),
                "State=DOWN",
                "Reason=gha-test",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        Self { harness, node }
    }
}

impl Drop for NodeDown<'_> {
    fn drop(&mut self) {
        let _ = self
            .harness
            .slurm
            .command("scontrol")
            .args(["update", &format!("NodeName={}", self.node), "State=RESUME"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_failure_mid_job_resubmits_exactly_once() {
    let (harness, first, _) = Harness::one_job_launched(Options {
        launcher_mode: "hold",
        ..Options::default()
    })
    .await;

    let down = NodeDown::take_down(&harness);
    let second = harness
        .wait_for(1, "attempt 2 submitted", |state| {
            state.attempt == 2 && state.phase() == JobPhase::Submitted
        })
        .await;
    assert_eq!(
        harness
            .slurm
            .job_state(first.slurm_job_id)
            .unwrap()
            .as_deref(),
        Some("NODE_FAIL")
    );
    drop(down);
    // The second attempt runs once the node is back; nothing else appears.
    harness.wait_report(second.slurm_job_id).await;
    let jobs = harness.slurm_jobs_for(1);
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    let state = harness.state(1).await.unwrap();
    assert_eq!(state.attempt, 2);
    assert_eq!(state.slurm_job_id, second.slurm_job_id);
}
