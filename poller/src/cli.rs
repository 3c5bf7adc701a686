//! Command line of `gha-poller`, validated into a [`Config`] before any I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use gha_github::args::GitHubTlsArgs;
use gha_github::{AppCredentials, Auth, Endpoint, GitHubClient};
use gha_runtime::ConfigError;
use gha_runtime::admin::AdminArgs;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use gha_runtime::telemetry::TelemetryArgs;
use secrecy::ExposeSecret;
use secrecy::SecretString;

use crate::policy::JobPolicy;
use crate::webhook_signature::WebhookSecrets;

/// Discover queued GitHub Actions jobs and publish them to NATS.
#[derive(Debug, clap::Parser)]
#[command(name = "gha-poller", version)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
// Built once at start: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the webhook endpoint and run the reconciliation poll, publishing
    /// to NATS.
    Run {
        #[command(flatten)]
        github: GitHubArgs,
        #[command(flatten)]
        nats: NatsArgs,
        #[command(flatten)]
        admin: AdminArgs,
        /// Address for the webhook endpoint, e.g. `0.0.0.0:8080`; webhooks
        /// are off when unset (poll only).
        #[arg(long, env = "GHA_WEBHOOK_LISTEN")]
        webhook_listen: Option<SocketAddr>,
        /// File with the webhook secret; several lines = several secrets
        /// accepted (for rotation).
        #[arg(long, env = "GHA_WEBHOOK_SECRET_FILE")]
        webhook_secret_file: Option<PathBuf>,
        /// Path of the webhook endpoint.
        #[arg(long, env = "GHA_WEBHOOK_PATH", default_value = "/webhook")]
        webhook_path: String,
        /// Seconds between polls of an idle repository.
        #[arg(long, env = "GHA_POLL_INTERVAL", default_value_t = 30)]
        poll_interval: u64,
        /// Seconds between polls of a repository with queued or running
        /// work.
        #[arg(long, env = "GHA_BUSY_POLL_INTERVAL", default_value_t = 5)]
        busy_poll_interval: u64,
        /// Counted GitHub requests per hour the poll may spend (304s are
        /// free); default half of a token's 5000.
        #[arg(long, env = "GHA_REQUEST_BUDGET", default_value_t = 2500)]
        request_budget: u32,
        /// Seconds a published job may stay queued on GitHub without a
        /// record in the scheduler's `gha_jobs` before it is announced
        /// again (the scheduler may have dropped it).
        #[arg(long, env = "GHA_REANNOUNCE_AFTER", default_value_t = 300)]
        reannounce_after: u64,
    },
    /// One reconciliation pass against GitHub: print each job that would be
    /// published, publish nothing.
    PollOnce {
        #[command(flatten)]
        github: GitHubArgs,
        /// One JSON object per line (the `QueuedJob` fields, snake_case).
        #[arg(long)]
        json: bool,
        /// Longest wait, in seconds, for a GitHub rate limit to lift
        /// (`retry-after`, a spent budget) before giving up.
        #[arg(long, env = "GHA_POLL_ONCE_MAX_WAIT", default_value_t = 300)]
        max_wait: u64,
    },
}

/// Where GitHub is, who we are to it, what to watch and accept.
#[derive(Debug, Clone, Args)]
pub struct GitHubArgs {
    /// GitHub API base URL; for GitHub Enterprise Server,
    /// `https://HOST/api/v3`.
    #[arg(
        long,
        env = "GHA_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    #[command(flatten)]
    pub tls: GitHubTlsArgs,
    /// File holding a personal access token. `GHA_GITHUB_TOKEN` in the
    /// environment works too.
    #[arg(long, env = "GHA_GITHUB_TOKEN_FILE", conflicts_with = "app_id")]
    pub token_file: Option<PathBuf>,
    /// GitHub App id (with --app-key-file and --installation-id).
    #[arg(long, env = "GHA_GITHUB_APP_ID", requires = "app_key_file")]
    pub app_id: Option<u64>,
    /// The GitHub App's private key (PEM).
    #[arg(long, env = "GHA_GITHUB_APP_KEY_FILE")]
    pub app_key_file: Option<PathBuf>,
    /// GitHub App installation ids, comma-separated.
    #[arg(long, env = "GHA_GITHUB_INSTALLATION_ID", value_delimiter = ',')]
    pub installation_id: Vec<u64>,
    /// Repositories to watch, `owner/name`, comma-separated.
    #[arg(long, env = "GHA_REPOS", value_delimiter = ',', conflicts_with_all = ["org", "installation_repos"])]
    pub repos: Vec<String>,
    /// Watch every repository of this organisation.
    #[arg(long, env = "GHA_ORG", conflicts_with = "installation_repos")]
    pub org: Option<String>,
    /// Watch every repository of the App's installations.
    #[arg(long, env = "GHA_INSTALLATION_REPOS")]
    pub installation_repos: bool,
    /// Label every accepted job must carry; empty = none required.
    #[arg(long, env = "GHA_MARKER_LABEL", default_value = "slurm")]
    pub marker_label: String,
    /// If set, the only labels accepted (besides the marker),
    /// comma-separated.
    #[arg(long, env = "GHA_ALLOWED_LABELS", value_delimiter = ',')]
    pub allowed_labels: Vec<String>,
    /// Accept jobs of pull requests from forks (their code runs on the
    /// cluster).
    #[arg(long, env = "GHA_ALLOW_FORK_PRS")]
    pub allow_fork_prs: bool,
}

/// Which repositories are watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    Repos(Vec<String>),
    Org(String),
    /// Every repository the installation can access.
    Installation,
}

/// How the poller authenticates.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    Token(SecretString),
    App {
        app_id: u64,
        /// The private key (PEM), checked to be usable.
        key_pem: SecretString,
        installations: Vec<u64>,
    },
}

/// Validated GitHub settings.
#[derive(Debug, Clone)]
pub struct GitHubConfig {
    /// The API and the HTTPS client that reaches it (CA file read).
    pub endpoint: Endpoint,
    pub auth: AuthConfig,
    pub watched: Watched,
    pub policy: JobPolicy,
}

/// The validated command.
// Built once at start: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Config {
    Run {
        github: GitHubConfig,
        nats: NatsConfig,
        admin_listen: Option<SocketAddr>,
        webhook: Option<(SocketAddr, String, WebhookSecrets)>,
        poll_interval: Duration,
        busy_poll_interval: Duration,
        request_budget: u32,
        reannounce_after: Duration,
    },
    PollOnce {
        github: GitHubConfig,
        json: bool,
        /// Rate limits that lift within this long are waited for.
        max_wait: Duration,
    },
}

fn bad(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

fn read_file(flag: &str, path: &PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|err| bad(format!("{flag} {}: {err}", path.display())))
}

impl GitHubArgs {
    fn validate(self) -> Result<GitHubConfig, ConfigError> {
        let api_url = self.github_api_url.trim_end_matches('/').to_string();
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(bad(format!(
                "--github-api-url {api_url:?}: not an http(s) URL"
            )));
        }
        let roots = self.tls.validate()?;
        let endpoint = Endpoint::new(&api_url, &roots)
            .map_err(|err| bad(format!("--github-api-url {api_url}: {err}")))?;
        let auth = match (self.app_id, &self.app_key_file) {
            (Some(app_id), Some(key_file)) => {
                let pem = read_file("--app-key-file", key_file)?;
                if let Err(err) = AppCredentials::check_key(pem.as_bytes()) {
                    return Err(bad(format!(
                        "--app-key-file {}: not an RSA private key: {err}",
                        key_file.display()
                    )));
                }
                if self.installation_id.is_empty() {
                    return Err(bad("--app-id needs --installation-id"));
                }
                AuthConfig::App {
                    app_id,
                    key_pem: SecretString::from(pem),
                    installations: self.installation_id.clone(),
                }
            }
            _ => {
                let token = match &self.token_file {
                    Some(path) => read_file("--token-file", path)?.trim().to_string(),
                    None => std::env::var("GHA_GITHUB_TOKEN").unwrap_or_default(),
                };
                if token.is_empty() {
                    return Err(bad(
                        "no GitHub credentials: give --token-file (or GHA_GITHUB_TOKEN), or --app-id",
                    ));
                }
                AuthConfig::Token(SecretString::from(token))
            }
        };
        let app_installations = match &auth {
            AuthConfig::App { installations, .. } => installations.len(),
            AuthConfig::Token(_) => 0,
        };
        let watched = if self.installation_repos {
            if app_installations == 0 {
                return Err(bad(
                    "--installation-repos needs GitHub App authentication (--app-id)",
                ));
            }
            Watched::Installation
        } else {
            if app_installations > 1 {
                return Err(bad(
                    "with several --installation-id, watch --installation-repos (which repository belongs to which installation is not guessed)",
                ));
            }
            match (self.repos.is_empty(), self.org) {
                (false, _) => {
                    if let Some(bad_repo) = self.repos.iter().find(|repo| {
                        repo.split('/').count() != 2 || repo.starts_with('/') || repo.ends_with('/')
                    }) {
                        return Err(bad(format!("--repos: {bad_repo:?} is not owner/name")));
                    }
                    Watched::Repos(self.repos)
                }
                (true, Some(org)) => Watched::Org(org),
                (true, None) => {
                    return Err(bad(
                        "nothing to watch: give --repos, --org or --installation-repos",
                    ));
                }
            }
        };
        let marker = Some(self.marker_label.trim()).filter(|label| !label.is_empty());
        let allowed = (!self.allowed_labels.is_empty()).then_some(self.allowed_labels.as_slice());
        Ok(GitHubConfig {
            endpoint,
            auth,
            watched,
            policy: JobPolicy::new(marker, allowed, self.allow_fork_prs),
        })
    }
}

impl GitHubConfig {
    /// One client per identity: the token's, or each installation's.
    pub fn clients(&self) -> Vec<std::sync::Arc<GitHubClient>> {
        self.clients_with(|client| client)
    }

    /// [`GitHubConfig::clients`], each passed through `adjust` (e.g. to
    /// wait for rate limits in a one-shot command).
    pub fn clients_with(
        &self,
        adjust: impl Fn(GitHubClient) -> GitHubClient,
    ) -> Vec<std::sync::Arc<GitHubClient>> {
        use std::sync::Arc;
        match &self.auth {
            AuthConfig::Token(token) => {
                vec![Arc::new(adjust(GitHubClient::new(
                    &self.endpoint,
                    token.clone(),
                )))]
            }
            AuthConfig::App {
                app_id,
                key_pem,
                installations,
            } => {
                let app = Arc::new(
                    AppCredentials::new(
                        &self.endpoint,
                        *app_id,
                        key_pem.expose_secret().as_bytes(),
                    )
                    .expect("the key was checked at validation"),
                );
                installations
                    .iter()
                    .map(|installation| {
                        Arc::new(adjust(GitHubClient::with_auth(
                            &self.endpoint,
                            Auth::Installation {
                                app: app.clone(),
                                installation: *installation,
                            },
                        )))
                    })
                    .collect()
            }
        }
    }
}

impl Cli {
    /// Checks the flags; reads the secret files they name, nothing else.
    pub fn validate(self) -> Result<Config, ConfigError> {
        Ok(match self.command {
            Command::Run {
                github,
                nats,
                admin,
                webhook_listen,
                webhook_secret_file,
                webhook_path,
                poll_interval,
                busy_poll_interval,
                request_budget,
                reannounce_after,
            } => {
                let webhook = match (webhook_listen, webhook_secret_file) {
                    (Some(listen), Some(file)) => {
                        let secrets =
                            WebhookSecrets::from_lines(&read_file("--webhook-secret-file", &file)?);
                        if secrets.is_empty() {
                            return Err(bad(format!(
                                "--webhook-secret-file {}: no secret in it",
                                file.display()
                            )));
                        }
                        if !webhook_path.starts_with('/') {
                            return Err(bad("--webhook-path must start with /"));
                        }
                        Some((listen, webhook_path, secrets))
                    }
                    (Some(_), None) => {
                        return Err(bad(
                            "--webhook-listen needs --webhook-secret-file: unsigned webhooks are refused",
                        ));
                    }
                    (None, _) => None,
                };
                if poll_interval == 0 || busy_poll_interval == 0 {
                    return Err(bad("poll intervals must be at least 1 second"));
                }
                if request_budget == 0 {
                    return Err(bad("--request-budget must be at least 1"));
                }
                if reannounce_after == 0 {
                    return Err(bad("--reannounce-after must be at least 1 second"));
                }
                Config::Run {
                    github: github.validate()?,
                    nats: nats.validate()?,
                    admin_listen: admin.admin_listen,
                    webhook,
                    poll_interval: Duration::from_secs(poll_interval),
                    busy_poll_interval: Duration::from_secs(busy_poll_interval),
                    request_budget,
                    reannounce_after: Duration::from_secs(reannounce_after),
                }
            }
            Command::PollOnce {
                github,
                json,
                max_wait,
            } => Config::PollOnce {
                github: github.validate()?,
                json,
                max_wait: Duration::from_secs(max_wait),
            },
        })
    }
}
