//! The fake runner: what runs inside a test container in place of GitHub's
//! actions runner, laid out like it ([`layout`]: `run.sh`,
//! `run-helper.sh.template`, `bin/Runner.Listener`). It speaks the
//! emulator's runner protocol ([`crate::github::runner_api`]), performs a
//! job's scripted [`Step`](crate::github::model::Step)s between the job
//! hooks ([`JobHooks`]), and prints the lines the real runner prints, with
//! the real runner's timestamps:
//!
//! ```text
//! √ Connected to GitHub
//!
//! Current runner version: '2.321.0'
//! 2024-11-26 09:05:03Z: Listening for Jobs
//! 2024-11-26 09:05:04Z: Running job: build
//! 2024-11-26 09:05:06Z: Job build completed with result: Succeeded
//! ```
//!
//! Like the real listener it writes into its root (the parent of `bin/`,
//! found through the executable's real path: [`layout::root_of_listener`]):
//! `_diag/` (its trace log, and the jobs' logs in `_diag/pages/`), the JIT
//! config's `.runner`, `.credentials` and `.credentials_rsaparams`, and the
//! work folder `_work/` ([`root`]). A read-only root fails at `_diag/`.
//!
//! A JIT config makes it ephemeral: one job, then the session is deleted and
//! [`run`] returns. Otherwise it takes jobs until `shutdown` is cancelled;
//! then, as the real runner on SIGINT/SIGTERM, it cancels a running job
//! (reported `Canceled`) and deletes its session. (`Exiting...` is printed
//! by the binary on SIGINT only, as the real listener's Ctrl-C handler does.)
//!
//! Exit codes of the listener ([`FakeRunnerError::exit_code`]), as the real
//! one's: 0 after its job (ephemeral) or on shutdown, whatever the job's
//! result; 1 (`TerminatedError`) when it is not configured, its files or
//! work folder cannot be written, the server refuses the credential, stays
//! unreachable through the retries, or answers outside the protocol;
//! [`EX_USAGE`] (64) for contradictory flags (the fake's own); SIGABRT when
//! `_diag/` cannot be created (the real one's unhandled exception).
//! `run.sh` turns all of these into 0 (see `layout/run-helper.sh.template`).

mod api;
pub mod args;
mod console;
#[cfg(test)]
mod hook_tests;
pub mod layout;
pub mod root;
#[cfg(test)]
mod scripted_server;
mod steps;
#[cfg(test)]
mod tests;
mod worker;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::github::runner_api::{JitConfig, JitConfigError, JobResult, SessionRequest};
use api::RunnerApi;
use root::RunnerRoot;

pub use args::{FakeRunnerAction, FakeRunnerArgs, inherited_environment};
pub use console::{Console, StdoutConsole, Transcript, timestamped};
pub use root::DiagUnwritable;
pub use worker::JobHooks;

/// The version the fake runner claims to be.
pub const RUNNER_VERSION: &str = "2.321.0";
/// Exit code for a runtime failure: the real listener's `TerminatedError`.
pub const EXIT_FAILURE: u8 = 1;
/// `sysexits.h` `EX_USAGE`: exit code for contradictory flags.
pub const EX_USAGE: u8 = 64;

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Where the runner's credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// An `encoded_jit_config`: its files are written into the root, then
    /// read back, as the real listener does.
    Jit(Secret),
    /// `.runner` and `.credentials` already in the root.
    Configured,
    /// A registration token with the runner's settings, as `config.sh` takes
    /// them (the fake's shortcut: nothing is written).
    Registration {
        server_url: String,
        token: Secret,
        name: String,
        labels: Vec<String>,
        ephemeral: bool,
    },
}

/// How the runner proves who it is, and where it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// From a JIT config: always ephemeral.
    Jit { server_url: String, token: Secret },
    /// A registration token with the runner's settings.
    Registration {
        server_url: String,
        token: Secret,
        name: String,
        labels: Vec<String>,
        ephemeral: bool,
    },
}

impl Credential {
    /// Reads an `encoded_jit_config`, keeping only where to connect and the
    /// secret.
    pub fn from_jit_config(encoded: &str) -> Result<Self, FakeRunnerError> {
        let config = JitConfig::decode(encoded)?;
        Ok(Self::Jit {
            server_url: config.runner.server_url,
            token: Secret::new(config.credentials.data.token),
        })
    }

    /// The runner protocol's base URL, `http://HOST:PORT/_runner`.
    pub fn server_url(&self) -> &str {
        match self {
            Self::Jit { server_url, .. } | Self::Registration { server_url, .. } => server_url,
        }
    }

    /// Whether the runner takes one job only.
    pub fn ephemeral(&self) -> bool {
        match self {
            Self::Jit { .. } => true,
            Self::Registration { ephemeral, .. } => *ephemeral,
        }
    }

    fn session_request(&self) -> SessionRequest {
        match self {
            Self::Jit { token, .. } => SessionRequest::Jit {
                jit_token: token.expose().to_owned(),
            },
            Self::Registration {
                token,
                name,
                labels,
                ephemeral,
                ..
            } => SessionRequest::Registration {
                registration_token: token.expose().to_owned(),
                name: name.clone(),
                labels: labels.clone(),
                ephemeral: *ephemeral,
            },
        }
    }
}

/// How often a call that failed transiently is tried, and the pause after
/// the first failure (doubling, up to 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct FakeRunnerConfig {
    /// The runner's root: where its files, `_diag/` and `_work/` go.
    pub root: PathBuf,
    pub source: CredentialSource,
    /// How long each idle long poll asks the server to wait for a job.
    pub poll_wait: Duration,
    /// How often a running job checks whether it was cancelled; tests make
    /// it short.
    pub progress_interval: Duration,
    /// Printed as `Current runner version: '...'`.
    pub runner_version: String,
    /// What to do about transient HTTP failures.
    pub retry: Retry,
    /// The scripts run around each job.
    pub hooks: JobHooks,
    /// The environment jobs inherit: the runner's, less its inputs.
    pub environment: Vec<(OsString, OsString)>,
    /// How long a cancelled job may take to finish before its worker is
    /// killed (which skips its completed hook).
    pub worker_cancel_timeout: Duration,
}

impl FakeRunnerConfig {
    /// The defaults: 5 s long polls, a cancellation check every 200 ms, no
    /// hooks, this process's environment less its inputs, 30 s for a
    /// cancelled job to finish (the real listener's wait on SIGTERM).
    pub fn new(root: impl Into<PathBuf>, source: CredentialSource) -> Self {
        Self {
            root: root.into(),
            source,
            poll_wait: Duration::from_secs(5),
            progress_interval: Duration::from_millis(200),
            runner_version: RUNNER_VERSION.into(),
            retry: Retry::default(),
            hooks: JobHooks::default(),
            environment: inherited_environment(),
            worker_cancel_timeout: Duration::from_secs(30),
        }
    }
}

/// Why [`run`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerExit {
    /// An ephemeral runner finished its job.
    JobDone { result: JobResult },
    /// `shutdown` was cancelled; any running job was reported cancelled.
    ShutDown,
}

/// Why the runner stopped short.
#[derive(Debug, thiserror::Error)]
pub enum FakeRunnerError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("bad JIT config: {0}")]
    JitConfig(#[from] JitConfigError),
    /// The real listener's message for a run without `.runner`.
    #[error("Runner is not configured.")]
    NotConfigured,
    /// Writing a file of the JIT config failed: .NET's exception message.
    #[error("{0}")]
    RunnerFiles(String),
    #[error("Fail to create and validate runner's work directory '{}'.", .path.display())]
    WorkDirectory { path: PathBuf },
    #[error("the job's files: {0}")]
    JobFiles(std::io::Error),
    #[error("the server refused the runner's credential: {message}")]
    CredentialRefused { message: String },
    #[error("{what}: the server answered {status}: {message}")]
    Rejected {
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("{what}: gave up after {attempts} tries: {last}")]
    Unreachable {
        what: &'static str,
        attempts: u32,
        last: String,
    },
    #[error("{what}: unreadable answer: {source}")]
    BadAnswer {
        what: &'static str,
        source: reqwest::Error,
    },
    #[error("HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error("writing the runner's output: {0}")]
    Output(#[from] std::io::Error),
}

impl FakeRunnerError {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => EX_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// The credential and work folder from `source`, writing the JIT config's
/// files into `root` first.
fn configure(
    root: &RunnerRoot,
    source: &CredentialSource,
) -> Result<(Credential, String), FakeRunnerError> {
    match source {
        CredentialSource::Registration {
            server_url,
            token,
            name,
            labels,
            ephemeral,
        } => Ok((
            Credential::Registration {
                server_url: server_url.clone(),
                token: token.clone(),
                name: name.clone(),
                labels: labels.clone(),
                ephemeral: *ephemeral,
            },
            "_work".into(),
        )),
        CredentialSource::Jit(encoded) => {
            root.write_jit_config(encoded.expose())?;
            configure(root, &CredentialSource::Configured)
        }
        CredentialSource::Configured => {
            let (runner, credentials) = root.load_settings()?;
            Ok((
                Credential::Jit {
                    server_url: runner.server_url,
                    token: Secret::new(credentials.data.token),
                },
                runner.work_folder,
            ))
        }
    }
}

/// Configures the root, connects, then takes jobs until the ephemeral
/// runner's one job is done or `shutdown` is cancelled; lines go to
/// `console`. `_diag/` is the caller's ([`RunnerRoot::open_diag`]): the
/// binary opens it before anything else, as the real listener does.
pub async fn run(
    config: FakeRunnerConfig,
    mut console: impl Console,
    shutdown: CancellationToken,
) -> Result<RunnerExit, FakeRunnerError> {
    let root = RunnerRoot::new(&config.root);
    let (credential, work_folder) = configure(&root, &config.source)?;
    let work = root.create_work_dir(&work_folder)?;
    let api = RunnerApi::new(credential.server_url(), config.retry)?;
    let request = credential.session_request();
    let session = tokio::select! {
        biased;
        () = shutdown.cancelled() => return Ok(RunnerExit::ShutDown),
        session = api.create_session(&request) => session?,
    };
    tracing::info!(session_id = %session.session_id, runner = %session.runner_name, "connected");
    console.line("√ Connected to GitHub")?;
    console.line("")?;
    console.line(&format!(
        "Current runner version: '{}'",
        config.runner_version
    ))?;
    console.event("Listening for Jobs")?;

    let ephemeral = session.ephemeral || credential.ephemeral();
    while !shutdown.is_cancelled() {
        let polled = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            polled = api.next_job(&session.session_id, config.poll_wait) => polled?,
        };
        let Some(job) = polled else { continue };
        console.event(&format!("Running job: {}", job.name))?;
        let ctx = worker::JobContext::prepare(
            root.path(),
            &work,
            &job,
            &session.runner_name,
            &config.environment,
        )
        .map_err(FakeRunnerError::JobFiles)?;
        let result =
            worker::run_job(&api, &session.session_id, &job, &ctx, &config, &shutdown).await?;
        console.event(&format!(
            "Job {} completed with result: {}",
            job.name,
            result.as_runner_prints()
        ))?;
        api.complete(&session.session_id, job.job_id, result)
            .await?;
        if ephemeral && !shutdown.is_cancelled() {
            api.delete_session(&session.session_id).await?;
            return Ok(RunnerExit::JobDone { result });
        }
    }
    api.delete_session(&session.session_id).await?;
    Ok(RunnerExit::ShutDown)
}
