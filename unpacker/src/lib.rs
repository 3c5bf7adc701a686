//! `gha-unpacker`: pulls container images, verifies them, flattens their
//! layers into one root filesystem with exact OCI whiteout semantics, and
//! publishes it on CVMFS or a shared directory, content-addressed.
//!
//! This build parses and validates its configuration; unpacking is not
//! implemented yet, and each subcommand says so (issue 6).
#![forbid(unsafe_code)]

pub mod cli;
pub mod image;
pub mod metrics;
pub mod publish;
pub mod request;
pub mod serve;
pub mod service;
pub mod source;
pub mod store;
pub mod unpack;

pub use cli::{Cli, Config};

use gha_runtime::Unimplemented;
use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    match config {
        Config::Unpack { .. } => Err(Unimplemented {
            command: "gha-unpacker unpack",
            tracking: "issue 6, gha-unpacker",
        }
        .into()),
        Config::Serve(config) => serve::serve(config, service::default_opener(), shutdown).await,
        Config::Request(config) => {
            let path = tokio::select! {
                path = request::request(&config) => path?,
                _ = shutdown.cancelled() => anyhow::bail!("interrupted"),
            };
            println!("{path}");
            Ok(())
        }
    }
}
