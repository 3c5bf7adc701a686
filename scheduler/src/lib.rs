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
pub mod live_metrics;
pub mod metrics;
pub mod placement;
pub mod reconcile;
pub mod record;
pub mod run_args;
pub mod runners;
pub mod service;
pub mod settings;
pub mod slurm;
pub mod submit;

pub use cli::{Cli, Config};

use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    match config {
        Config::Run(run) => service::run(*run, shutdown).await,
        // A placed job prints its pool and arguments (exit 0); a refusal
        // is an error saying why (exit 1).
        Config::Explain {
            policy,
            labels,
            repo,
        } => {
            let text = placement::explain::explain(&policy, &labels, repo.as_deref()).map_err(
                |refusal| anyhow::anyhow!("refused ({}): {refusal}", refusal.metric_label()),
            )?;
            print!("{text}");
            Ok(())
        }
    }
}
