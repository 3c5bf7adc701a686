//! `gha-runner-launcher`: the one step of a runner's Slurm batch script.
//! Claims its JIT config from the scheduler over NATS, starts the actions
//! runner in a container runtime (apptainer, bwrap or host), forwards
//! SIGTERM, enforces an idle timeout, reports lifecycle events, cleans up.
//!
//! This build parses and validates its configuration; launching is not
//! implemented yet, and it says so (the runner-launcher issue).
#![forbid(unsafe_code)]

pub mod cli;
pub mod docker;

pub use cli::{Cli, Config};

use gha_runtime::Unimplemented;
use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let command = match config {
        Config::Run { .. } => "gha-runner-launcher run",
    };
    Err(Unimplemented {
        command,
        tracking: "the gha-runner-launcher issue",
    }
    .into())
}
