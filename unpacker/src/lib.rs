//! `gha-unpacker`: pulls container images, verifies them, flattens their
//! layers into one root filesystem with exact OCI whiteout semantics, and
//! publishes it on CVMFS or a shared directory, content-addressed.
//!
//! `unpack` works on local sources (`oci:`, `oci-archive:`,
//! `docker-archive:`); `serve` is not implemented yet and says so (issue 6).
#![forbid(unsafe_code)]

pub mod apptainer;
pub mod cli;
pub mod compression;
pub mod flatten;
mod gzip;
pub mod image;
mod oneshot;
mod resolve;
pub mod source;
pub mod unpack;
pub mod verify;

pub use cli::{Cli, Config};

use gha_runtime::Unimplemented;
use tokio_util::sync::CancellationToken;

/// Runs the command `config` describes until it finishes or `shutdown` is
/// cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    match config {
        Config::Unpack {
            source,
            dest,
            platform,
            apptainer,
        } => {
            let options = unpack::UnpackOptions {
                platform,
                apptainer,
                cancel: shutdown.child_token(),
                ..Default::default()
            };
            tokio::task::spawn_blocking(move || oneshot::unpack(&source, &dest, &options)).await?
        }
        Config::Serve { .. } => Err(Unimplemented {
            command: "gha-unpacker serve",
            tracking: "issue 6, gha-unpacker",
        }
        .into()),
    }
}
