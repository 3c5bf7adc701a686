//! `gha-scheduler explain`: what placement would do with a job, for people.
//!
//! Prints the pool and the complete `sbatch` argument list: the fixed
//! arguments the submitter adds (with placeholders for per-job values)
//! followed by the placement's. Touches neither NATS nor Slurm.

use std::fmt::Write as _;

use super::{Decision, Policy, Refusal};
use crate::slurm::sbatch;

/// What `explain` prints for a placed job.
pub fn render(decision: &Decision) -> String {
    let placement = &decision.placement;
    let mut out = String::new();
    let _ = writeln!(out, "pool: {}", placement.pool);
    let _ = writeln!(out, "image: {}", placement.image);
    let _ = writeln!(out, "runtime: {}", placement.runtime);
    let _ = writeln!(out, "runner labels: {}", decision.runner_labels.join(","));
    if !decision.runtime_options.is_empty() {
        let _ = writeln!(
            out,
            "runtime options: {}",
            decision.runtime_options.join(" ")
        );
    }
    let mut args = sbatch::fixed_args(
        "<names of the job's variables>",
        "gha-<job id>-<attempt>",
        "<correlation id>",
        "<grace seconds>",
    );
    args.push("--output=<--job-output>".to_owned());
    args.extend(decision.sbatch_args.iter().cloned());
    out.push_str("sbatch");
    for arg in args {
        let _ = write!(out, " \\\n  {arg}");
    }
    out.push('\n');
    out
}

/// Places `labels` from `repository` and renders the outcome.
pub fn explain(
    policy: &Policy,
    labels: &[String],
    repository: Option<&str>,
) -> Result<String, Refusal> {
    policy
        .place(labels, repository)
        .map(|decision| render(&decision))
}
