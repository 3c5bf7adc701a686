//! The fake runner: what runs inside a test container in place of GitHub's
//! actions runner. It speaks the emulator's runner protocol
//! ([`crate::github::runner_api`]), performs a job's scripted
//! [`Step`](crate::github::model::Step)s, and prints the lines the real
//! runner prints, with the real runner's timestamps:
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
//! A JIT config makes it ephemeral: one job, then the session is deleted and
//! [`run`] returns. Otherwise it takes jobs until `shutdown` is cancelled;
//! then, as the real runner on SIGINT/SIGTERM, it cancels a running job
//! (reported `Cancelled`), deletes its session and prints `Exiting...`.
//!
//! Exit codes of the `fake-runner` binary ([`FakeRunnerError::exit_code`]):
//! 0 after its job (ephemeral) or on shutdown, whatever the job's result;
//! [`EX_USAGE`] (64) for a bad configuration, before any I/O;
//! [`EXIT_FAILURE`] (1) when the server refuses the credential, stays
//! unreachable through the retries, or answers outside the protocol.

mod api;
mod args;
mod console;
#[cfg(test)]
mod scripted_server;
mod steps;
#[cfg(test)]
mod tests;

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::github::runner_api::{
    AssignedJob, JitConfig, JitConfigError, JobResult, SessionRequest,
};
use api::RunnerApi;

pub use args::FakeRunnerArgs;
pub use console::{Console, StdoutConsole, Transcript, timestamped};

/// The version the fake runner claims to be.
pub const RUNNER_VERSION: &str = "2.321.0";
/// Exit code for a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// `sysexits.h` `EX_USAGE`: exit code for a bad configuration.
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

/// How the runner proves who it is, and where it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// From a JIT config: always ephemeral.
    Jit { server_url: String, token: Secret },
    /// A registration token with the runner's settings, as `config.sh` takes
    /// them.
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
    pub credential: Credential,
    /// How long each idle long poll asks the server to wait for a job.
    pub poll_wait: Duration,
    /// How often a running job checks whether it was cancelled; tests make
    /// it short.
    pub progress_interval: Duration,
    /// Printed as `Current runner version: '...'`.
    pub runner_version: String,
    /// What to do about transient HTTP failures.
    pub retry: Retry,
}

impl FakeRunnerConfig {
    /// The defaults: 5 s long polls, a cancellation check every 200 ms.
    pub fn new(credential: Credential) -> Self {
        Self {
            credential,
            poll_wait: Duration::from_secs(5),
            progress_interval: Duration::from_millis(200),
            runner_version: RUNNER_VERSION.into(),
            retry: Retry::default(),
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
            Self::Config(_) | Self::JitConfig(_) => EX_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// Connects, then takes jobs until the ephemeral runner's one job is done or
/// `shutdown` is cancelled; lines go to `console`.
pub async fn run(
    config: FakeRunnerConfig,
    mut console: impl Console,
    shutdown: CancellationToken,
) -> Result<RunnerExit, FakeRunnerError> {
    let api = RunnerApi::new(config.credential.server_url(), config.retry)?;
    let request = config.credential.session_request();
    let session = tokio::select! {
        biased;
        () = shutdown.cancelled() => {
            console.line("Exiting...")?;
            return Ok(RunnerExit::ShutDown);
        }
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

    let ephemeral = session.ephemeral || config.credential.ephemeral();
    while !shutdown.is_cancelled() {
        let polled = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            polled = api.next_job(&session.session_id, config.poll_wait) => polled?,
        };
        let Some(job) = polled else { continue };
        console.event(&format!("Running job: {}", job.name))?;
        let result = run_job(
            &api,
            &session.session_id,
            &job,
            config.progress_interval,
            &shutdown,
        )
        .await?;
        api.complete(&session.session_id, job.job_id, result)
            .await?;
        console.event(&format!(
            "Job {} completed with result: {}",
            job.name,
            result.as_runner_prints()
        ))?;
        if ephemeral && !shutdown.is_cancelled() {
            api.delete_session(&session.session_id).await?;
            return Ok(RunnerExit::JobDone { result });
        }
    }
    api.delete_session(&session.session_id).await?;
    console.line("Exiting...")?;
    Ok(RunnerExit::ShutDown)
}

/// Performs `job`'s steps while checking every `progress_interval` whether
/// it was cancelled; a cancellation, or `shutdown`, stops the current step.
#[tracing::instrument(skip_all, fields(job_id = job.job_id))]
async fn run_job(
    api: &RunnerApi,
    session_id: &str,
    job: &AssignedJob,
    progress_interval: Duration,
    shutdown: &CancellationToken,
) -> Result<JobResult, FakeRunnerError> {
    let cancel = shutdown.child_token();
    let steps = steps::perform(&job.steps, &cancel);
    tokio::pin!(steps);
    tokio::select! {
        result = &mut steps => return Ok(result),
        watched = cancellation_requested(api, session_id, job.job_id, progress_interval) => watched?,
    }
    tracing::info!("job cancelled by the server");
    cancel.cancel();
    Ok(steps.await)
}

/// Returns once the server says the job was cancelled.
async fn cancellation_requested(
    api: &RunnerApi,
    session_id: &str,
    job_id: u64,
    every: Duration,
) -> Result<(), FakeRunnerError> {
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if api.job_control(session_id, job_id).await?.cancel_requested {
            return Ok(());
        }
    }
}
