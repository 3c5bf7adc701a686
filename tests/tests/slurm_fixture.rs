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
