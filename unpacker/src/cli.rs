//! Command line of `gha-unpacker`, validated into a [`Config`].

use std::path::PathBuf;

use gha_runtime::ConfigError;
use gha_runtime::telemetry::TelemetryArgs;

use crate::image::Platform;
use crate::request::{RequestArgs, RequestConfig};
use crate::serve::{ServeArgs, ServeConfig};
use crate::source::SourceRef;
use crate::source::registry::{RegistryArgs, RegistryOptions};

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
        /// Directory to create with the image's root filesystem; it must
        /// not exist yet.
        #[arg(long)]
        dest: PathBuf,
        /// Image of a multi-platform index to take, `os/arch[/variant]`
        /// (default: this machine's).
        #[arg(long)]
        platform: Option<String>,
        /// Apply the fix-ups for Apptainer on CVMFS: everything readable by
        /// others, `.singularity.d` from the image config, mount points.
        #[arg(long)]
        apptainer: bool,
        #[command(flatten)]
        registry: RegistryArgs,
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
    Unpack {
        source: SourceRef,
        dest: PathBuf,
        platform: Platform,
        apptainer: bool,
        registry: RegistryOptions,
    },
    Serve(ServeConfig),
    Request(RequestConfig),
}

/// The transports `gha-unpacker` reads, as skopeo spells them.
pub const TRANSPORTS: [&str; 4] = ["docker://", "oci:", "oci-archive:", "docker-archive:"];

impl Cli {
    /// Checks the flags without any I/O beyond looking at named files.
    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(match self.command {
            Command::Unpack {
                source,
                dest,
                platform,
                apptainer,
                registry,
            } => {
                if !TRANSPORTS.iter().any(|prefix| source.starts_with(prefix)) {
                    return Err(ConfigError(format!(
                        "source {source:?}: expected one of {}",
                        TRANSPORTS.join(", ")
                    )));
                }
                let source = source
                    .parse::<SourceRef>()
                    .map_err(|err| ConfigError(err.to_string()))?;
                let platform = match platform {
                    Some(text) => parse_platform(&text)?,
                    None => Platform::host(),
                };
                Config::Unpack {
                    source,
                    dest,
                    platform,
                    apptainer,
                    registry: registry.options(),
                }
            }
            Command::Serve(args) => Config::Serve(args.validate()?),
            Command::Request(args) => Config::Request(args.validate()?),
        })
    }
}

/// `os/arch[/variant]`.
pub fn parse_platform(text: &str) -> Result<Platform, ConfigError> {
    let parts: Vec<&str> = text.split('/').collect();
    match parts[..] {
        [os, architecture] | [os, architecture, _]
            if !os.is_empty() && !architecture.is_empty() =>
        {
            Ok(Platform {
                os: os.to_owned(),
                architecture: architecture.to_owned(),
                variant: parts
                    .get(2)
                    .filter(|v| !v.is_empty())
                    .map(|v| (*v).to_owned()),
            })
        }
        _ => Err(ConfigError(format!(
            "platform {text:?}: expected os/arch or os/arch/variant, e.g. linux/arm64"
        ))),
    }
}
