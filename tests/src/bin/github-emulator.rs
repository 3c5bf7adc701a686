//! `github-emulator`: the GitHub stand-in as a server, for `make demo` and
//! for people. Prints `GITHUB_API_URL=...` and `GITHUB_TOKEN=...` once
//! listening (with `--https`, also `GITHUB_CA_FILE=...`, the CA to give
//! `--github-ca-file`); control it through `/_emulator/` (see
//! `docs/github-emulator.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gha_testkit::github::{EmulatorConfig, GitHubEmulator, Settings};

/// Serve an emulated GitHub REST API, webhooks and runner service.
#[derive(Parser)]
#[command(name = "github-emulator", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// File holding the personal access token to accept (default: a random
    /// one, printed at start).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Repositories to create, `org/name`, comma-separated.
    #[arg(long, value_delimiter = ',')]
    repos: Vec<String>,
    /// Where to deliver `workflow_job` webhooks.
    #[arg(long)]
    webhook_url: Option<String>,
    /// File holding the webhook secret (signatures are sent only with one).
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// Cancel jobs queued longer than this many seconds (GitHub: 86400).
    #[arg(long, default_value_t = 86_400)]
    queue_timeout_secs: u64,
    /// Advertise `https://` (a CA made at start; its file is printed).
    #[arg(long)]
    https: bool,
}

fn read_secret(path: &PathBuf) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = EmulatorConfig {
        settings: Settings {
            queue_timeout: Duration::from_secs(cli.queue_timeout_secs),
            ..Settings::default()
        },
        https: cli.https,
        ..EmulatorConfig::default()
    };
    if let Some(path) = &cli.token_file {
        config.token = read_secret(path)?;
    }
    let emulator = GitHubEmulator::bind(cli.listen, config).await?;
    for repo in &cli.repos {
        emulator.add_repo(repo);
    }
    if let Some(url) = &cli.webhook_url {
        let secret = cli
            .webhook_secret_file
            .as_ref()
            .map(read_secret)
            .transpose()?;
        emulator.set_webhook(url, secret.as_deref());
    }
    println!("GITHUB_API_URL={}", emulator.url());
    println!("GITHUB_TOKEN={}", emulator.token());
    if cli.https {
        println!("GITHUB_CA_FILE={}", emulator.ca().cert_file().display());
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
