//! `gha-scheduler` entry point: parse, validate, run (see the library).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gha_scheduler::Cli;

/// Time to finish in-flight submissions and KV writes after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gha_runtime::telemetry::init(&cli.telemetry);
    gha_runtime::drive(cli.validate(), SHUTDOWN_GRACE, gha_scheduler::run).await
}
