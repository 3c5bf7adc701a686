//! `gha-scheduler`: turns demand on the GHA_JOBS stream into Slurm jobs that
//! start ephemeral runners, exactly once; answers the launchers' JIT-config
//! requests; takes Slurm jobs back when demand goes away.
//!
//! This build parses and validates its configuration; scheduling is not
//! implemented yet, and each subcommand says so (issue 5).
#![forbid(unsafe_code)]

pub mod admission;
pub mod claim;
pub mod cli;
pub mod engine;
pub mod failpoint;
pub mod github;
pub mod jit;
pub mod metrics;
pub mod placement;
pub mod reconcile;
pub mod record;
pub mod service;
pub mod settings;
pub mod slurm;
pub mod submit;

pub use cli::{Cli, Config};

use gha_runtime::Unimplemented;
use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let command = match config {
        Config::Run { .. } => "gha-scheduler run",
        Config::Explain { .. } => "gha-scheduler explain",
    };
    Err(Unimplemented {
        command,
        tracking: "issue 5, gha-scheduler",
    }
    .into())
}
