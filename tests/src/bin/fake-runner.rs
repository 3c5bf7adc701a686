//! `fake-runner`: stands in for GitHub's actions runner in test containers
//! (see [`gha_testkit::fake_runner`], which also documents the exit codes).

use std::process::ExitCode;

use clap::Parser;
use gha_testkit::fake_runner::{self, EXIT_FAILURE, FakeRunnerArgs, StdoutConsole};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let result = match FakeRunnerArgs::parse().validate() {
        Ok(config) => fake_runner::run(config, StdoutConsole, cancel_on_signal()).await,
        Err(err) => Err(err),
    };
    if let Err(err) = &result {
        let line = format!("Error: {err}");
        eprintln!("{}", fake_runner::timestamped(chrono::Utc::now(), &line));
    }
    result.map_or_else(|err| ExitCode::from(err.exit_code()), |_| ExitCode::SUCCESS)
}

/// A token cancelled by the first SIGINT or SIGTERM, as the real runner
/// treats either; a second one exits at once.
fn cancel_on_signal() -> CancellationToken {
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        token.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        std::process::exit(EXIT_FAILURE.into());
    });
    shutdown
}
