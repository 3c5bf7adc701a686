//! `fake-runner`: stands in for GitHub's actions runner's listener
//! (`bin/Runner.Listener` of a runner laid out by `fake-runner
//! install-layout DIR`); see [`gha_testkit::fake_runner`], which also
//! documents the exit codes.

use std::process::ExitCode;

use clap::Parser;
use gha_testkit::fake_runner::{
    self, EXIT_FAILURE, FakeRunnerAction, FakeRunnerArgs, StdoutConsole, layout, root::RunnerRoot,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let now = chrono::Utc::now();
    let root = match std::env::current_exe().and_then(|exe| layout::root_of_listener(&exe)) {
        Ok(root) => RunnerRoot::new(root),
        Err(err) => return fail(&format!("cannot find the runner's root: {err}")),
    };
    let args = FakeRunnerArgs::parse();
    if let Some(fake_runner::args::FakeRunnerCommand::InstallLayout { dir }) = &args.command {
        return install(dir);
    }
    // As the real listener's HostContext: `_diag/` before anything else, and
    // an unhandled exception (SIGABRT) if it cannot be made.
    let diag = match root.open_diag(now) {
        Ok(file) => file,
        Err(err) => {
            eprintln!("Unhandled exception. {err}");
            std::process::abort();
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(diag))
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let result = match args.validate(root.path().to_path_buf()) {
        Ok(FakeRunnerAction::Run(config)) => {
            fake_runner::run(*config, StdoutConsole, cancel_on_signal()).await
        }
        Ok(FakeRunnerAction::InstallLayout(dir)) => return install(&dir),
        Err(err) => Err(err),
    };
    match result {
        Ok(exit) => {
            tracing::info!(?exit, "runner exited");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "runner failed");
            eprintln!("{err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn install(dir: &std::path::Path) -> ExitCode {
    match std::env::current_exe().and_then(|exe| layout::install(dir, &exe)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("install-layout {}: {err}", dir.display())),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(EXIT_FAILURE)
}

/// A token cancelled by the first SIGINT or SIGTERM, as the real listener
/// treats either; on SIGINT it prints `Exiting...` first, as the real
/// listener's Ctrl-C handler does (SIGTERM reaches it as the runtime's
/// unload, which prints nothing). A second signal exits at once.
fn cancel_on_signal() -> CancellationToken {
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => println!("Exiting..."),
        }
        token.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        std::process::exit(EXIT_FAILURE.into());
    });
    shutdown
}
