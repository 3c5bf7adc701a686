//! The environment of a runner's Slurm job: what gha-scheduler hands the
//! batch script (through `sbatch`'s own environment and `--export=<names>`,
//! never values on a command line) and gha-runner-launcher reads.
//!
//! Every name lives here once. Variables marked *secret* are credentials of
//! that one job: the launcher never logs them, never puts them on an argv,
//! and passes none of them into the runner's container.

/// NATS URL(s) the launcher connects to from the node, comma-separated.
/// Never carries userinfo: a job's NATS identity is [`NATS_CREDS`].
pub const NATS_URL: &str = "GHA_NATS_URL";

/// *Secret.* The job's own NATS credentials, the text of a `.creds` file
/// (user JWT and seed), allowed only to ask for this job's JIT config and
/// publish this job's events. Absent where NATS runs without accounts.
pub const NATS_CREDS: &str = "GHA_NATS_CREDS";

/// The GitHub job id (`workflow_job.id`) the Slurm job was submitted for.
pub const JOB_ID: &str = "GHA_JOB_ID";

/// *Secret.* The single-use claim credential the launcher presents in its
/// `JitConfigRequest`; the scheduler keeps only its SHA-256.
pub const CLAIM: &str = "GHA_CLAIM";

/// `--comment` of the Slurm job: ties Slurm, logs, events and GitHub.
pub const CORRELATION_ID: &str = "GHA_CORRELATION_ID";

/// The runner image: an unpacked directory (`/cvmfs/...`), or for
/// `apptainer` a SIF file or `docker://` reference.
pub const RUNNER_IMAGE: &str = "GHA_RUNNER_IMAGE";

/// Container runtime: `apptainer`, `bwrap` or `host`.
pub const RUNNER_RUNTIME: &str = "GHA_RUNNER_RUNTIME";

/// The pool's extra runtime arguments (`runtime_options`), as a JSON array
/// of strings, e.g. `["--nv"]`. Absent or empty: none.
pub const RUNNER_RUNTIME_OPTIONS: &str = "GHA_RUNNER_RUNTIME_OPTIONS";

/// `1` when the pool asks for a per-job rootless Docker daemon whose socket
/// is bound into the container (`docker = true`).
pub const RUNNER_DOCKER: &str = "GHA_RUNNER_DOCKER";

/// The deployment's cluster name: runners are named `<cluster>-<slurm job id>`.
pub const RUNNER_CLUSTER: &str = "GHA_RUNNER_CLUSTER";

/// Every variable the scheduler sets, for tests and docs.
pub const ALL: &[&str] = &[
    NATS_URL,
    NATS_CREDS,
    JOB_ID,
    CLAIM,
    CORRELATION_ID,
    RUNNER_IMAGE,
    RUNNER_RUNTIME,
    RUNNER_RUNTIME_OPTIONS,
    RUNNER_DOCKER,
    RUNNER_CLUSTER,
];

/// The variables that are credentials.
pub const SECRETS: &[&str] = &[NATS_CREDS, CLAIM];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_a_job_variable_and_names_are_unique() {
        for secret in SECRETS {
            assert!(ALL.contains(secret), "{secret}");
        }
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|name| name.starts_with("GHA_")));
    }
}
