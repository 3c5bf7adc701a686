//! `gha-unpacker` entry point: parse, validate, run (see the library).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gha_unpacker::Cli;

/// Time to abort an open CVMFS transaction cleanly after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gha_runtime::telemetry::init(&cli.telemetry);
    gha_runtime::drive(cli.validate(), SHUTDOWN_GRACE, gha_unpacker::run).await
}
