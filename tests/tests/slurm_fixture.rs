//! The shared test Slurm runs real batch jobs.

use std::time::Duration;

use gha_testkit::{Slurm, eventually_blocking};

#[test]
fn a_batch_job_reaches_completed_through_squeue() {
    let slurm = Slurm::shared().expect("test Slurm");
    let out = tempfile::tempdir().unwrap();
    let marker = out.path().join("ran");
    let output = slurm
        .command("sbatch")
        .args([
            "--parsable",
            "--job-name=gha-fixture-test",
            "--output=/dev/null",
        ])
        .arg(format!("--wrap=echo ran > {}", marker.display()))
        .output()
        .expect("sbatch runs");
    assert!(
        output.status.success(),
        "sbatch failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let job_id: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .expect("--parsable prints the job id");

    let mut seen = Vec::new();
    let finished = eventually_blocking("the job to finish", Duration::from_secs(60), || {
        let state = slurm.job_state(job_id).expect("squeue works")?;
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        matches!(
            state.as_str(),
            "COMPLETED" | "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL"
        )
        .then_some(state)
    })
    .expect("job finished");
    assert_eq!(finished, "COMPLETED", "states seen: {seen:?}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
}

#[test]
fn an_unknown_job_is_reported_as_gone() {
    let slurm = Slurm::shared().expect("test Slurm");
    // Job ids are u32 in Slurm; this one is far beyond any the test run makes.
    assert_eq!(slurm.job_state(4_000_000_000).unwrap(), None);
}

#[test]
fn a_dedicated_slurm_can_lose_its_controller_and_its_node_and_get_them_back() {
    let state = tempfile::tempdir().unwrap();
    let slurm = Slurm::dedicated(&state.path().join("slurm"), 30).expect("dedicated Slurm");
    assert_ne!(
        slurm.conf(),
        Slurm::shared().expect("shared").conf(),
        "a dedicated Slurm has its own configuration"
    );
    let sbatch = |slurm: &Slurm| {
        slurm
            .command("sbatch")
            .args(["--parsable", "--output=/dev/null", "--wrap=true"])
            .output()
            .expect("sbatch runs")
    };
    assert!(sbatch(&slurm).status.success());

    slurm.kill_daemon("slurmctld").expect("kill slurmctld");
    let refused = eventually_blocking(
        "sbatch refused without a controller",
        Duration::from_secs(30),
        || (!sbatch(&slurm).status.success()).then_some(()),
    );
    assert!(refused.is_ok(), "sbatch kept working without slurmctld");
    slurm.start_daemon("slurmctld").expect("slurmctld back");
    eventually_blocking("sbatch works again", Duration::from_secs(60), || {
        sbatch(&slurm).status.success().then_some(())
    })
    .expect("controller back");

    slurm.set_node_state("DOWN", "test").expect("node down");
    eventually_blocking("node down", Duration::from_secs(30), || {
        slurm.node_state().ok().filter(|s| s.starts_with("down"))
    })
    .expect("down");
    slurm.set_node_state("RESUME", "").expect("node back");
    eventually_blocking("node idle again", Duration::from_secs(60), || {
        slurm
            .node_state()
            .ok()
            .filter(|s| matches!(s.as_str(), "idle" | "mix" | "alloc"))
    })
    .expect("idle");
}
