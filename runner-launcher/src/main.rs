//! `gha-runner-launcher` entry point: parse, validate, run (see the library).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gha_runner_launcher::Cli;

/// Time for the runner to finish or cancel its job after SIGTERM; Slurm
/// sends it `--signal=B:TERM@<grace>` before the time limit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(90);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gha_runtime::telemetry::init(&cli.telemetry);
    gha_runtime::drive(cli.validate(), SHUTDOWN_GRACE, gha_runner_launcher::run).await
}
