//! `gha-ctl` entry point: parse, validate, run (see the library).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gha_ctl::Cli;

/// A command reads and prints; after Ctrl-C it has nothing to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gha_runtime::telemetry::init(&cli.telemetry);
    gha_runtime::drive(cli.validate(), SHUTDOWN_GRACE, gha_ctl::run).await
}
