//! `gha-unpacker`: pulls container images, verifies them, flattens their
//! layers into one root filesystem with exact OCI whiteout semantics, and
//! publishes it on CVMFS or a shared directory, content-addressed.
//!
//! `unpack` works on registries (`docker://`) and local sources (`oci:`,
//! `oci-archive:`, `docker-archive:`); `serve` publishes into a directory
//! or CVMFS and answers HTTP and NATS; `request` asks it from a CI step.
#![forbid(unsafe_code)]

pub mod apptainer;
pub mod cli;
pub mod compression;
pub mod flatten;
mod gzip;
pub mod image;
pub mod metrics;
mod oneshot;
pub mod publish;
pub mod request;
mod resolve;
pub mod serve;
pub mod service;
pub mod source;
pub mod store;
pub mod unpack;
pub mod verify;

pub use cli::{Cli, Config};

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
            registry,
        } => {
            let options = unpack::UnpackOptions {
                platform,
                apptainer,
                cancel: shutdown.child_token(),
                ..Default::default()
            };
            tokio::task::spawn_blocking(move || {
                oneshot::unpack(&source, &dest, &options, &registry)
            })
            .await?
        }
        Config::Serve(config) => {
            let opener = service::opener_with(config.registry.clone());
            serve::serve(config, opener, shutdown).await
        }
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
