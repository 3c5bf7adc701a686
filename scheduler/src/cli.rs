//! Command line of `gha-scheduler`, validated into a [`Config`].

use std::path::PathBuf;

use gha_runtime::ConfigError;
use gha_runtime::telemetry::TelemetryArgs;

/// Place queued GitHub Actions jobs on Slurm as ephemeral runners.
#[derive(Debug, clap::Parser)]
#[command(name = "gha-scheduler", version)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Consume demand, submit to Slurm, mint JIT configs, reconcile.
    Run(Box<crate::run_args::RunArgs>),
    /// Print the pool and the exact `sbatch` arguments a job with these
    /// labels would get, touching neither NATS nor Slurm.
    Explain {
        /// The placement policy (TOML).
        #[arg(long)]
        policy: PathBuf,
        /// The job's `runs-on` labels, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        labels: Vec<String>,
        /// The job's repository, `owner/name`, for per-repository limits.
        #[arg(long)]
        repo: Option<String>,
    },
}

/// The validated command.
#[derive(Debug)]
pub enum Config {
    Run(Box<crate::run_args::RunConfig>),
    Explain {
        /// The policy, loaded and validated.
        policy: Box<crate::placement::Policy>,
        labels: Vec<String>,
        repo: Option<String>,
    },
}

impl Cli {
    /// Checks the flags without any I/O beyond looking at named files.
    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(match self.command {
            Command::Run(args) => Config::Run(Box::new(args.validate()?)),
            Command::Explain {
                policy,
                labels,
                repo,
            } => {
                if !policy.is_file() {
                    return Err(ConfigError(format!(
                        "--policy {}: no such file",
                        policy.display()
                    )));
                }
                let policy = crate::placement::Policy::load(&policy)
                    .map_err(|err| ConfigError(err.to_string()))?;
                Config::Explain {
                    policy: Box::new(policy),
                    labels,
                    repo,
                }
            }
        })
    }
}
