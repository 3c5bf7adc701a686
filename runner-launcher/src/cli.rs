//! Command line of `gha-runner-launcher`, validated into a [`Config`].

use gha_runtime::ConfigError;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use gha_runtime::telemetry::TelemetryArgs;

/// Start one ephemeral GitHub Actions runner inside this Slurm job.
#[derive(Debug, clap::Parser)]
#[command(name = "gha-runner-launcher", version)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Claim the JIT config, run the runner in its container, report, clean
    /// up.
    Run {
        #[command(flatten)]
        nats: NatsArgs,
    },
}

/// The validated command.
#[derive(Debug)]
pub enum Config {
    Run { nats: NatsConfig },
}

impl Cli {
    /// Checks the flags without any I/O beyond looking at named files.
    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(match self.command {
            Command::Run { nats } => Config::Run {
                nats: nats.validate()?,
            },
        })
    }
}
