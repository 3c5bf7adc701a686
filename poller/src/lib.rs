//! `gha-poller`: discovers queued GitHub Actions `workflow_job`s, from
//! webhooks and a reconciliation poll, and publishes them to the GHA_JOBS
//! stream as `QueuedJob` / `JobStatusChange` (see `proto/README.md`).
//!
//! `run` serves the webhook endpoint and runs the reconciliation poll
//! ([`service`]); `poll-once` shows what one pass finds. GitHub itself
//! (HTTPS, budget, rate limits, App tokens, payload types) is reached
//! through the `gha-github` crate.
#![forbid(unsafe_code)]

pub mod announce;
pub mod cli;
pub mod etag_cache;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod poll;
pub mod poll_loop;
pub mod poll_once;
pub mod recent;
pub mod repos;
pub mod service;
pub mod webhook;
pub mod webhook_signature;

pub use cli::{Cli, Config};

use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    match config {
        Config::PollOnce {
            github,
            json,
            max_wait,
        } => {
            let mut stdout = std::io::stdout();
            poll_once::poll_once(&github, json, max_wait, &mut stdout).await?;
            Ok(())
        }
        config @ Config::Run { .. } => service::serve(config, shutdown).await,
    }
}
