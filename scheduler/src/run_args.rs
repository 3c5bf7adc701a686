//! Flags of `gha-scheduler run`, validated into a [`RunConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use gha_github::TlsRoots;
use gha_github::args::GitHubTlsArgs;
use gha_runtime::ConfigError;
use gha_runtime::admin::AdminArgs;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use secrecy::SecretString;

use crate::placement::Policy;
use crate::settings::{ScopeKind, Settings};
use crate::slurm::cli::SlurmCliConfig;

/// Everything `run` is told.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The placement policy (TOML; see docs/scheduler.md).
    #[arg(long, env = "GHA_SCHEDULER_POLICY")]
    pub policy: PathBuf,
    /// GitHub API base URL; for GitHub Enterprise Server, `https://HOST/api/v3`.
    #[arg(
        long,
        env = "GHA_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,
    /// `--github-ca-file`: extra CAs for a GHES behind an internal CA.
    #[command(flatten)]
    pub github_tls: GitHubTlsArgs,
    /// File holding a token that may manage self-hosted runners.
    #[arg(long, env = "GHA_GITHUB_TOKEN_FILE", conflicts_with = "github_app_id")]
    pub github_token_file: Option<PathBuf>,
    /// GitHub App id (with --github-app-key-file).
    #[arg(long, env = "GHA_GITHUB_APP_ID", requires = "github_app_key_file")]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key (PEM).
    #[arg(long, env = "GHA_GITHUB_APP_KEY_FILE")]
    pub github_app_key_file: Option<PathBuf>,
    /// The App installation every runner is registered through; without
    /// it, each job's own installation (as the poller saw it).
    #[arg(long, env = "GHA_GITHUB_INSTALLATION_ID", requires = "github_app_id")]
    pub github_installation_id: Option<u64>,
    /// Cluster name: runner names are `<cluster>-<slurm job id>`.
    #[arg(long, env = "GHA_SCHEDULER_CLUSTER", default_value = "slurm")]
    pub cluster: String,
    /// Prefix of Slurm job names (`<prefix>-<job id>-<attempt>`); one per
    /// deployment sharing a Slurm cluster.
    #[arg(long, env = "GHA_SCHEDULER_NAME_PREFIX", default_value = "gha")]
    pub name_prefix: String,
    /// The batch script's one command.
    #[arg(
        long,
        env = "GHA_SCHEDULER_LAUNCHER",
        default_value = "gha-runner-launcher run"
    )]
    pub launcher_command: String,
    /// Where each job's output goes (sbatch `--output`; `%x` = job name,
    /// `%j` = job id), e.g. `/shared/logs/gha/%x-%j.out`.
    #[arg(long, env = "GHA_SCHEDULER_JOB_OUTPUT", default_value = "/dev/null")]
    pub job_output: String,
    /// NATS URL the launcher inside the job uses; default: the first
    /// --nats-url.
    #[arg(long, env = "GHA_SCHEDULER_JOB_NATS_URL")]
    pub job_nats_url: Option<String>,
    /// Extra plain variables for every job, `NAME=VALUE`, comma-separated.
    /// Never secrets: they are visible to Slurm administrators.
    #[arg(long, env = "GHA_SCHEDULER_JOB_ENV", value_delimiter = ',')]
    pub job_env: Vec<String>,
    /// Register runners on the job's repository or on its organisation.
    #[arg(
        long,
        env = "GHA_SCHEDULER_RUNNER_SCOPE",
        value_enum,
        default_value = "repo"
    )]
    pub runner_scope: ScopeKind,
    /// Runner group of org-level runners (1 = Default).
    #[arg(long, env = "GHA_SCHEDULER_RUNNER_GROUP_ID", default_value_t = 1)]
    pub runner_group_id: i64,
    /// Submission attempts per job (a Slurm job that dies before its
    /// runner took work costs one).
    #[arg(long, env = "GHA_SCHEDULER_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
    /// Seconds between SIGTERM to the launcher and the kill.
    #[arg(long, env = "GHA_SCHEDULER_SIGNAL_GRACE", default_value_t = 60)]
    pub signal_grace: u32,
    /// `sbatch` calls in flight at once.
    #[arg(long, env = "GHA_SCHEDULER_SUBMIT_CONCURRENCY", default_value_t = 16)]
    pub submit_concurrency: usize,
    /// Seconds between reconcile passes.
    #[arg(long, env = "GHA_SCHEDULER_RECONCILE_INTERVAL", default_value = "15")]
    pub reconcile_interval: f64,
    /// Every how many reconcile passes offline, idle runners of ours are
    /// looked for and deleted (one GitHub request per repository or org).
    #[arg(long, env = "GHA_SCHEDULER_RUNNER_SWEEP_EVERY", default_value_t = 20)]
    pub runner_sweep_every: u32,
    #[arg(long, env = "GHA_SCHEDULER_SBATCH", default_value = "sbatch")]
    pub sbatch: PathBuf,
    #[arg(long, env = "GHA_SCHEDULER_SQUEUE", default_value = "squeue")]
    pub squeue: PathBuf,
    #[arg(long, env = "GHA_SCHEDULER_SCANCEL", default_value = "scancel")]
    pub scancel: PathBuf,
    /// Only this user's jobs are listed (`squeue -u`); default: all users'.
    #[arg(long, env = "GHA_SCHEDULER_SLURM_USER")]
    pub slurm_user: Option<String>,
    /// Seconds a Slurm command may take before its outcome counts as unknown.
    #[arg(long, env = "GHA_SCHEDULER_SLURM_TIMEOUT", default_value_t = 30)]
    pub slurm_timeout: u64,
}

/// How the scheduler authenticates to GitHub.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    Token(SecretString),
    App {
        app_id: u64,
        key_pem: SecretString,
        /// One installation for all jobs; `None`: each job's own.
        installation: Option<u64>,
    },
}

/// The validated `run` configuration.
#[derive(Debug)]
pub struct RunConfig {
    pub nats: NatsConfig,
    pub admin_listen: Option<SocketAddr>,
    pub policy: Policy,
    pub github_api_url: String,
    /// The roots GitHub's certificate is checked against (CA file read).
    pub github_tls: TlsRoots,
    pub github_auth: GitHubAuth,
    pub settings: Settings,
    pub slurm: SlurmCliConfig,
}

fn read_secret(flag: &str, path: &PathBuf) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError(format!("{flag} {}: {err}", path.display())))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(ConfigError(format!("{flag} {}: empty", path.display())));
    }
    Ok(SecretString::from(text.to_owned()))
}

impl RunArgs {
    /// Checks every flag and loads the policy; no network, no Slurm.
    pub fn validate(self) -> Result<RunConfig, ConfigError> {
        let nats = self.nats.validate()?;
        let policy = Policy::load(&self.policy).map_err(|err| ConfigError(err.to_string()))?;
        let github_tls = self.github_tls.validate()?;
        let github_auth = match (&self.github_token_file, self.github_app_id) {
            (Some(path), None) => GitHubAuth::Token(read_secret("--github-token-file", path)?),
            (None, Some(app_id)) => {
                let key_file = self.github_app_key_file.as_ref().expect("clap requires it");
                let key_pem = read_secret("--github-app-key-file", key_file)?;
                gha_github::AppCredentials::check_key(
                    secrecy::ExposeSecret::expose_secret(&key_pem).as_bytes(),
                )
                .map_err(|err| ConfigError(format!("--github-app-key-file: {err}")))?;
                GitHubAuth::App {
                    app_id,
                    key_pem,
                    installation: self.github_installation_id,
                }
            }
            _ => {
                return Err(ConfigError(
                    "GitHub credentials: give --github-token-file, or --github-app-id with \
                     --github-app-key-file"
                        .into(),
                ));
            }
        };
        let name_ok = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        if !name_ok(&self.name_prefix) {
            return Err(ConfigError(format!(
                "--name-prefix {:?}: letters, digits, '_' and '.' only",
                self.name_prefix
            )));
        }
        if !name_ok(&self.cluster.replace('-', "_")) {
            return Err(ConfigError(format!(
                "--cluster {:?}: letters, digits, '-', '_' and '.' only",
                self.cluster
            )));
        }
        if self.job_output.trim().is_empty() || self.job_output.contains(char::is_whitespace) {
            return Err(ConfigError(
                "--job-output: a path without whitespace".into(),
            ));
        }
        if self.launcher_command.trim().is_empty() || self.launcher_command.contains('\n') {
            return Err(ConfigError("--launcher-command: one non-empty line".into()));
        }
        let job_nats_url = self
            .job_nats_url
            .clone()
            .unwrap_or_else(|| self.nats.urls[0].trim().to_owned());
        let mut job_env = vec![("GHA_NATS_URL".to_owned(), job_nats_url)];
        for pair in self.job_env.iter().filter(|pair| !pair.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("--job-env {pair:?}: expected NAME=VALUE")))?;
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(ConfigError(format!(
                    "--job-env {name:?}: not a variable name"
                )));
            }
            job_env.push((name.to_owned(), value.to_owned()));
        }
        if self.max_attempts == 0 || self.submit_concurrency == 0 {
            return Err(ConfigError(
                "--max-attempts and --submit-concurrency must be at least 1".into(),
            ));
        }
        if !(self.reconcile_interval.is_finite() && self.reconcile_interval >= 0.1) {
            return Err(ConfigError(
                "--reconcile-interval: at least 0.1 seconds".into(),
            ));
        }
        let settings = Settings {
            name_prefix: self.name_prefix,
            cluster: self.cluster,
            max_attempts: self.max_attempts,
            signal_grace_seconds: self.signal_grace,
            launcher_command: self.launcher_command,
            job_output: self.job_output,
            job_env,
            runner_scope: self.runner_scope,
            runner_group_id: self.runner_group_id,
            submit_concurrency: self.submit_concurrency,
            reconcile_interval: Duration::from_secs_f64(self.reconcile_interval),
            runner_sweep_every: self.runner_sweep_every.max(1),
        };
        let mut slurm = SlurmCliConfig {
            sbatch: self.sbatch,
            squeue: self.squeue,
            scancel: self.scancel,
            user: self.slurm_user,
            timeout: Duration::from_secs(self.slurm_timeout.max(1)),
            ..SlurmCliConfig::default()
        };
        if let Ok(conf) = std::env::var("SLURM_CONF") {
            slurm.env.push(("SLURM_CONF".into(), conf));
        }
        Ok(RunConfig {
            nats,
            admin_listen: self.admin.admin_listen,
            policy,
            github_api_url: self.github_api_url,
            github_tls,
            github_auth,
            settings,
            slurm,
        })
    }
}
