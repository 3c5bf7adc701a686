//! `gha-poller`: discovers queued GitHub Actions `workflow_job`s, from
//! webhooks and a reconciliation poll, and publishes them to the GHA_JOBS
//! stream as `QueuedJob` / `JobStatusChange` (see `proto/README.md`).
//!
//! This build parses and validates its configuration; discovery itself is
//! not implemented yet, and each subcommand says so (issue 4).
#![forbid(unsafe_code)]

pub mod cli;

pub use cli::{Cli, Config};

use gha_runtime::Unimplemented;
use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let command = match config {
        Config::Run { .. } => "gha-poller run",
        Config::PollOnce { .. } => "gha-poller poll-once",
    };
    Err(Unimplemented {
        command,
        tracking: "issue 4, gha-poller",
    }
    .into())
}
