//! `gha-unpacker`: pulls container images, verifies them, flattens their
//! layers into one root filesystem with exact OCI whiteout semantics, and
//! publishes it on CVMFS or a shared directory, content-addressed.
//!
//! This build parses and validates its configuration; unpacking is not
//! implemented yet, and each subcommand says so (issue 6).
#![forbid(unsafe_code)]

pub mod cli;
pub mod image;
pub mod publish;
pub mod source;
pub mod unpack;

pub use cli::{Cli, Config};

use gha_runtime::Unimplemented;
use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let command = match config {
        Config::Unpack { .. } => "gha-unpacker unpack",
        Config::Serve { .. } => "gha-unpacker serve",
    };
    Err(Unimplemented {
        command,
        tracking: "issue 6, gha-unpacker",
    }
    .into())
}
