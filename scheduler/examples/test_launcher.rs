//! A stand-in for `gha-runner-launcher` in the scheduler's tests: the batch
//! script's one command. It reports what the job received, asks for its JIT
//! config over NATS like the launcher does, and either exits or holds until
//! SIGTERM.
//!
//! Environment (set by the scheduler's `--job-env` and sbatch):
//! `GHA_TEST_REPORT_DIR` where to write `<slurm job id>.json`,
//! `GHA_TEST_LAUNCHER_MODE` = `exit` | `hold` | `claim` | `claim-hold` |
//! `wrong-claim`, `GHA_NATS_URL`, `GHA_JOB_ID`, `GHA_CLAIM`, `SLURM_JOB_ID`.
//! Test-only: it writes the claim and the JIT config it got into its
//! report so the tests can scan everything else for them.

use std::path::PathBuf;

use gha_proto::Contract;
use gha_proto::v1::JitConfigRequest;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(env("GHA_TEST_REPORT_DIR"));
    let mode = env("GHA_TEST_LAUNCHER_MODE");
    let slurm_job_id: u64 = env("SLURM_JOB_ID").parse().unwrap_or(0);
    let job_id: i64 = env("GHA_JOB_ID").parse().unwrap_or(0);
    let mut claim = env("GHA_CLAIM");
    let mut report = serde_json::json!({
        "slurm_job_id": slurm_job_id,
        "job_id": job_id,
        "claim": claim,
        "image": env("GHA_RUNNER_IMAGE"),
        "path_set": std::env::var_os("PATH").is_some(),
        "leaked_secret": std::env::var_os("GHA_TEST_CONTROLLER_SECRET").is_some(),
    });
    if mode.starts_with("claim") || mode == "wrong-claim" {
        if mode == "wrong-claim" {
            claim = "0".repeat(64);
        }
        let client = async_nats::connect(env("GHA_NATS_URL")).await?;
        let contract = Contract::new(client);
        let reply = contract
            .request_jit_config(
                &JitConfigRequest {
                    slurm_job_id,
                    job_id,
                    claim,
                    hostname: "test-node".into(),
                },
                std::time::Duration::from_secs(30),
            )
            .await?;
        report["refusal"] = reply.refusal().as_str_name().into();
        report["runner_name"] = reply.runner_name.clone().into();
        report["got_config"] = (!reply.encoded_jit_config.is_empty()).into();
        report["jit_config"] = reply.encoded_jit_config.clone().into();
    }
    let tmp = dir.join(format!(".{slurm_job_id}.json"));
    std::fs::write(&tmp, serde_json::to_vec(&report)?)?;
    std::fs::rename(&tmp, dir.join(format!("{slurm_job_id}.json")))?;
    if mode.ends_with("hold") {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        term.recv().await;
    }
    Ok(())
}
