//! Placement: which pool serves a job's labels, and the Slurm request for it.
//!
//! Pure: a validated [`Policy`] (from TOML) and functions from labels to a
//! [`Decision`] or a [`Refusal`]. No NATS, no Slurm.

use gha_proto::v1::Placement;

/// The validated placement policy.
#[derive(Debug, Clone)]
pub struct Policy {
    // Filled in by the placement work (pools, bounds, limits).
}

/// A policy file that does not parse or validate: where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field at fault, e.g. `pools[2].cpus.max`.
    pub field: String,
    pub message: String,
}

/// Where a job goes and the exact Slurm arguments that say so.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub placement: Placement,
    /// `--partition=...`, `--account=...`, `--cpus-per-task=...`, ... in a
    /// stable order; no job name, comment, export or signal (the submitter
    /// adds those).
    pub sbatch_args: Vec<String>,
}

/// Why no pool takes a job. Terminal for that job: recorded, counted, not
/// retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no pool serves labels [{labels}]")]
    NoPool { labels: String },
    #[error("pool {pool}: {label} asks for {asked}, outside the pool's bounds {bounds}")]
    OutOfBounds {
        pool: String,
        label: String,
        asked: String,
        bounds: String,
    },
    #[error("repository {repo} is not allowed: {why}")]
    RepoNotAllowed { repo: String, why: String },
}

impl Refusal {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NoPool { .. } => "no_pool",
            Self::OutOfBounds { .. } => "out_of_bounds",
            Self::RepoNotAllowed { .. } => "repo_not_allowed",
        }
    }
}
