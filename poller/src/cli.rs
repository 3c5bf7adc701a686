//! Command line of `gha-poller`, validated into a [`Config`].

use gha_runtime::ConfigError;
use gha_runtime::admin::AdminArgs;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use gha_runtime::telemetry::TelemetryArgs;

/// Discover queued GitHub Actions jobs and publish them to NATS.
#[derive(Debug, clap::Parser)]
#[command(name = "gha-poller", version)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the webhook endpoint and run the reconciliation poll, publishing
    /// to NATS.
    Run {
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// One reconciliation pass against GitHub: print each job that would be
    /// published, publish nothing.
    PollOnce {
        /// One JSON object per line (the `QueuedJob` fields, snake_case).
        #[arg(long)]
        json: bool,
    },
}

/// The validated command.
#[derive(Debug)]
pub enum Config {
    Run {
        nats: NatsConfig,
        admin_listen: Option<std::net::SocketAddr>,
    },
    PollOnce {
        json: bool,
    },
}

impl Cli {
    /// Checks the flags without any I/O beyond looking at named files.
    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(match self.command {
            Command::Run { nats, admin } => Config::Run {
                nats: nats.validate()?,
                admin_listen: admin.admin_listen,
            },
            Command::PollOnce { json } => Config::PollOnce { json },
        })
    }
}
