//! Command line of `gha-unpacker`, validated into a [`Config`].

use std::path::PathBuf;

use gha_runtime::ConfigError;
use gha_runtime::telemetry::TelemetryArgs;

use crate::request::{RequestArgs, RequestConfig};
use crate::serve::{ServeArgs, ServeConfig};

/// Unpack container images into root filesystems on CVMFS or a shared
/// directory.
#[derive(Debug, clap::Parser)]
#[command(name = "gha-unpacker", version)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Unpack one image into a directory, once.
    Unpack {
        /// Image, in skopeo's transport syntax: `docker://...`, `oci:DIR[:TAG]`,
        /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE`.
        source: String,
        /// Directory to create with the image's root filesystem.
        #[arg(long)]
        dest: PathBuf,
    },
    /// Serve unpack requests over HTTP and NATS, publishing into a
    /// directory or a CVMFS repository.
    Serve(ServeArgs),
    /// Ask the service to unpack an image; print its published path.
    Request(RequestArgs),
}

/// The validated command.
// Built once at start: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Config {
    Unpack { source: String, dest: PathBuf },
    Serve(ServeConfig),
    Request(RequestConfig),
}

/// The transports `gha-unpacker` reads, as skopeo spells them.
pub const TRANSPORTS: [&str; 4] = ["docker://", "oci:", "oci-archive:", "docker-archive:"];

impl Cli {
    /// Checks the flags without any I/O beyond looking at named files.
    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(match self.command {
            Command::Unpack { source, dest } => {
                if !TRANSPORTS.iter().any(|prefix| source.starts_with(prefix)) {
                    return Err(ConfigError(format!(
                        "source {source:?}: expected one of {}",
                        TRANSPORTS.join(", ")
                    )));
                }
                Config::Unpack { source, dest }
            }
            Command::Serve(args) => Config::Serve(args.validate()?),
            Command::Request(args) => Config::Request(args.validate()?),
        })
    }
}
