//! `gha-poller`: discovers queued GitHub Actions `workflow_job`s, from
//! webhooks and a reconciliation poll, and publishes them to the GHA_JOBS
//! stream as `QueuedJob` / `JobStatusChange` (see `proto/README.md`).
//!
//! This build has the decisions (which jobs are demand, what a status means,
//! webhook signature checks) and parses its configuration; the webhook
//! server and the poll loop are not implemented yet, and each subcommand
//! says so (issue 4).
#![forbid(unsafe_code)]

pub mod cli;
pub mod github;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod poll;
pub mod recent;
pub mod webhook;
pub mod webhook_signature;

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
