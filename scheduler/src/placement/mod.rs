//! Placement: which pool serves a job's labels, and the Slurm request for it.
//!
//! Pure: a validated [`Policy`] (from TOML, see `docs/scheduler.md`) and
//! [`Policy::place`] from labels to a [`Decision`] or a [`Refusal`]. No
//! NATS, no Slurm.

pub mod explain;
mod file;
mod load;
mod matching;
pub mod sizes;
mod spans;

use std::collections::BTreeSet;
use std::fmt;

use gha_proto::v1::Placement;

pub use load::{DEFAULT_IMPLICIT_LABELS, ExtraKind, SBATCH_EXTRA_ALLOWED};

use crate::admission::Limits;
use sizes::Resource;

/// The validated placement policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// In file order: ties between equally specific pools go to the first.
    pub pools: Vec<Pool>,
    /// Concurrency caps for admission (global, per pool, repo, org).
    pub limits: Limits,
    /// Lower-cased labels every pool serves without listing them
    /// (`self-hosted`, `linux`, `x64` unless the file says otherwise).
    pub implicit_labels: BTreeSet<String>,
    /// Which repositories may use the cluster; `None`: all.
    pub allowed: Option<Allowed>,
}

/// The repositories allowed to use the cluster: those of an allowed org,
/// plus those listed by name. Lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub orgs: BTreeSet<String>,
    pub repositories: BTreeSet<String>,
}

/// One pool of identical runners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    /// Lower-cased labels the pool serves.
    pub labels: BTreeSet<String>,
    pub partition: String,
    /// Empty: Slurm's default account.
    pub account: String,
    /// Empty: the account's default QOS.
    pub qos: String,
    pub cpus: Bound,
    pub mem_mib: Bound,
    pub gpus: Bound,
    /// `a100` in `--gres=gpu:a100:2`; `None`: any GPU type.
    pub gpu_type: Option<String>,
    /// Static generic resources beside GPUs (e.g. `tmpdisk:10240`).
    pub gres: String,
    pub time_minutes: Bound,
    pub constraint: String,
    pub image: String,
    pub runtime: Runtime,
    /// Extra arguments for the container runtime, passed to the launcher.
    pub runtime_options: Vec<String>,
    pub max_runners: Option<u32>,
    /// Allow-listed `sbatch` options, already rendered (`--reservation=ci`),
    /// sorted by option name.
    pub extra_args: Vec<String>,
}

/// A resource's default and the range sized labels may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

impl Bound {
    /// Exactly `amount`, no sized label may change it.
    pub fn fixed(amount: u64) -> Bound {
        Bound {
            default: amount,
            min: amount,
            max: amount,
        }
    }

    fn show(&self, resource: Resource) -> String {
        format!(
            "[{}, {}] (default {})",
            resource.show(self.min),
            resource.show(self.max),
            resource.show(self.default)
        )
    }
}

/// The container runtime the launcher starts the runner in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Apptainer,
    Bwrap,
    Host,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Apptainer => "apptainer",
            Self::Bwrap => "bwrap",
            Self::Host => "host",
        })
    }
}

/// A policy file that does not parse or validate: where and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field at fault, e.g. `pool[2].cpus.max` (pools
    /// counted from 0, in file order).
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
    /// The pool's container runtime options, for the launcher.
    pub runtime_options: Vec<String>,
    /// Labels to register the runner with, so that GitHub gives it this
    /// job: the pool's labels and the job's sized labels (`cpu-8`),
    /// lower-cased and sorted; not the implicit ones (`self-hosted`,
    /// `linux`, `x64`), which GitHub adds itself.
    pub runner_labels: Vec<String>,
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
    #[error("labels {first} and {second} ask for different amounts of {resource}")]
    ConflictingSizes {
        resource: String,
        first: String,
        second: String,
    },
}

impl Refusal {
    /// Label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NoPool { .. } => "no_pool",
            Self::OutOfBounds { .. } => "out_of_bounds",
            Self::RepoNotAllowed { .. } => "repo_not_allowed",
            Self::ConflictingSizes { .. } => "conflicting_sizes",
        }
    }
}
