//! Command line of `gha-unpacker`, validated into a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use gha_runtime::ConfigError;
use gha_runtime::admin::AdminArgs;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use gha_runtime::telemetry::TelemetryArgs;

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
    /// Serve unpack requests over HTTP and NATS.
    Serve {
        /// Address of the HTTP API.
        #[arg(long, env = "GHA_UNPACKER_LISTEN", default_value = "127.0.0.1:8480")]
        listen: SocketAddr,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// The validated command.
#[derive(Debug)]
pub enum Config {
    Unpack {
        source: String,
        dest: PathBuf,
    },
    Serve {
        listen: SocketAddr,
        nats: NatsConfig,
        admin_listen: Option<SocketAddr>,
    },
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
            Command::Serve {
                listen,
                nats,
                admin,
            } => Config::Serve {
                listen,
                nats: nats.validate()?,
                admin_listen: admin.admin_listen,
            },
        })
    }
}
