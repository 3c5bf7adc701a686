//! `gha-poller` entry point: parse, validate, run (see the library).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gha_poller::Cli;

/// Time to finish in-flight webhook requests and publishes after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gha_runtime::telemetry::init(&cli.telemetry);
    gha_runtime::drive(cli.validate(), SHUTDOWN_GRACE, gha_poller::run).await
}
