//! `gha-poller`: discovers queued GitHub Actions `workflow_job`s, from
//! webhooks and a reconciliation poll, and publishes them to the GHA_JOBS
//! stream as `QueuedJob` / `JobStatusChange` (see `proto/README.md`).
//!
//! This build has the decisions (which jobs are demand, what a status means,
//! webhook signature checks), the webhook endpoint, the reconciliation pass
//! and `poll-once`; `run` (the service loop tying them together) is not
//! implemented yet and says so (issue 4).
#![forbid(unsafe_code)]

pub mod cli;
pub mod github;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod poll;
pub mod poll_once;
pub mod recent;
pub mod repos;
pub mod webhook;
pub mod webhook_signature;

pub use cli::{Cli, Config};

use gha_runtime::Unimplemented;
use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, _shutdown: CancellationToken) -> anyhow::Result<()> {
    match config {
        Config::PollOnce { github, json } => {
            let mut stdout = std::io::stdout().lock();
            poll_once::poll_once(&github, json, &mut stdout).await?;
            Ok(())
        }
        Config::Run { .. } => Err(Unimplemented {
            command: "gha-poller run",
            tracking: "issue 4, gha-poller: the webhook endpoint and the poll pass exist; the service loop does not yet",
        }
        .into()),
    }
}
