//! One job, as the real runner's worker runs it (actions/runner
//! `Runner.Worker`): the job-started hook, the steps, the job-completed
//! hook, each with the job's `GITHUB_*` environment, in the job's
//! workspace, their output in the job's log (`_diag/pages/<job id>.log`),
//! never on the runner's stdout.
//!
//! Hooks (`ACTIONS_RUNNER_HOOK_JOB_STARTED` / `_COMPLETED`, see
//! `JobExtension.cs` and `JobHookProvider.cs`) are steps with an `always()`
//! condition: a job cancellation does not stop them, a non-zero exit fails
//! the job, a started hook that failed skips the steps but not the
//! completed hook. A path must end in `.sh` and exist (run by `bash
//! --noprofile --norc -e -o pipefail`, or `sh -e` without bash), as the
//! real runner requires. Once cancelled, the worker has
//! [`super::FakeRunnerConfig::worker_cancel_timeout`] to finish; then it is
//! killed, which stops a running hook and skips the completed hook.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::api::RunnerApi;
use super::root::DIAG;
use super::steps::{self, StepEnd};
use super::{FakeRunnerConfig, FakeRunnerError};
use crate::github::runner_api::{AssignedJob, JobResult};

/// The scripts the runner's administrator configured to run around jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobHooks {
    /// `ACTIONS_RUNNER_HOOK_JOB_STARTED`: runs before the job's steps.
    pub started: Option<PathBuf>,
    /// `ACTIONS_RUNNER_HOOK_JOB_COMPLETED`: runs after them.
    pub completed: Option<PathBuf>,
}

/// Where and with what a job's processes run.
#[derive(Debug)]
pub(super) struct JobContext {
    /// `GITHUB_WORKSPACE`: `<work>/<repo>/<repo>`.
    pub(super) workspace: PathBuf,
    /// The runner's environment (less its inputs) plus the job's variables.
    pub(super) env: Vec<(OsString, OsString)>,
    /// The job's log, which its processes write to.
    pub(super) log: File,
}

impl JobContext {
    /// Makes the job's workspace, temp dir and log.
    pub(super) fn prepare(
        root: &Path,
        work: &Path,
        job: &AssignedJob,
        runner_name: &str,
        inherited: &[(OsString, OsString)],
    ) -> std::io::Result<Self> {
        let (owner, repo) = job
            .repository
            .split_once('/')
            .unwrap_or(("", job.repository.as_str()));
        let runner_workspace = work.join(repo);
        let workspace = runner_workspace.join(repo);
        let temp = work.join("_temp");
        let pages = root.join(DIAG).join("pages");
        for dir in [&workspace, &temp, &pages] {
            std::fs::create_dir_all(dir)?;
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(pages.join(format!("{}.log", job.job_id)))?;
        let mut env = inherited.to_vec();
        let path = |p: &Path| p.as_os_str().to_owned();
        let vars: [(&str, OsString); 15] = [
            ("CI", "true".into()),
            ("GITHUB_ACTIONS", "true".into()),
            ("GITHUB_JOB", job.job_key.clone().into()),
            ("GITHUB_REPOSITORY", job.repository.clone().into()),
            ("GITHUB_REPOSITORY_OWNER", owner.into()),
            ("GITHUB_RUN_ID", job.run_id.to_string().into()),
            ("GITHUB_RUN_ATTEMPT", job.run_attempt.to_string().into()),
            ("GITHUB_WORKFLOW", job.workflow.clone().into()),
            ("GITHUB_WORKSPACE", path(&workspace)),
            ("RUNNER_NAME", runner_name.into()),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
            ("RUNNER_TEMP", path(&temp)),
            ("RUNNER_WORKSPACE", path(&runner_workspace)),
            ("RUNNER_ENVIRONMENT", "self-hosted".into()),
        ];
        for (name, value) in vars {
            env.retain(|(have, _)| have != name);
            env.push((name.into(), value));
        }
        Ok(Self {
            workspace,
            env,
            log,
        })
    }

    /// `program` with this job's environment, directory and log.
    pub(super) fn command(&self, program: &str) -> std::io::Result<Command> {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.workspace)
            .stdout(self.log.try_clone()?)
            .stderr(self.log.try_clone()?);
        Ok(command)
    }

    /// A line in the job's log.
    fn note(&self, line: &str) {
        use std::io::Write;
        let _ = writeln!(&self.log, "{line}");
    }

    fn lookup_path(&self) -> Option<&OsString> {
        self.env
            .iter()
            .find(|(name, _)| name == "PATH")
            .map(|(_, v)| v)
    }
}

/// Runs `job` to its result, watching the server for a cancellation every
/// `config.progress_interval`; `shutdown` cancels it too.
#[tracing::instrument(skip_all, fields(job_id = job.job_id))]
pub(super) async fn run_job(
    api: &RunnerApi,
    session_id: &str,
    job: &AssignedJob,
    ctx: &JobContext,
    config: &FakeRunnerConfig,
    shutdown: &CancellationToken,
) -> Result<JobResult, FakeRunnerError> {
    let cancel = shutdown.child_token();
    let kill = CancellationToken::new();
    let work = perform(job, ctx, &config.hooks, &cancel, &kill);
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => return Ok(result),
        watched = cancellation_requested(api, session_id, job.job_id, config.progress_interval) => {
            watched?;
            tracing::info!("job cancelled by the server");
        }
        () = cancel.cancelled() => tracing::info!("job cancelled: the runner is shutting down"),
    }
    cancel.cancel();
    tokio::select! {
        result = &mut work => Ok(result),
        () = tokio::time::sleep(config.worker_cancel_timeout) => {
            tracing::warn!(timeout = ?config.worker_cancel_timeout, "the worker did not finish after the cancellation; killing it");
            kill.cancel();
            work.await;
            Ok(JobResult::Cancelled)
        }
    }
}

/// The started hook, the steps (unless the hook failed), the completed
/// hook (unless the worker was killed); the worst result wins.
async fn perform(
    job: &AssignedJob,
    ctx: &JobContext,
    hooks: &JobHooks,
    cancel: &CancellationToken,
    kill: &CancellationToken,
) -> JobResult {
    let mut result = JobResult::Succeeded;
    if let Some(hook) = &hooks.started {
        result = worst(result, run_hook("job started hook", hook, ctx, kill).await);
    }
    if result == JobResult::Succeeded {
        result = steps::perform(&job.steps, ctx, cancel).await;
    }
    if let Some(hook) = &hooks.completed
        && !kill.is_cancelled()
    {
        result = worst(
            result,
            run_hook("job completed hook", hook, ctx, kill).await,
        );
    }
    if kill.is_cancelled() {
        return JobResult::Cancelled;
    }
    result
}

/// `Succeeded` < `Failed` < `Cancelled`, as the real runner merges results.
fn worst(a: JobResult, b: JobResult) -> JobResult {
    let rank = |r| match r {
        JobResult::Succeeded => 0,
        JobResult::Failed => 1,
        JobResult::Cancelled => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// Runs one hook script; only `kill` stops it.
async fn run_hook(
    what: &str,
    path: &Path,
    ctx: &JobContext,
    kill: &CancellationToken,
) -> JobResult {
    ctx.note(&format!(
        "A {what} has been configured by the self-hosted runner administrator"
    ));
    let command = match hook_command(path, ctx) {
        Ok(command) => command,
        Err(message) => {
            ctx.note(&format!("##[error]{message}"));
            tracing::warn!(%message, hook = %path.display(), "hook cannot run");
            return JobResult::Failed;
        }
    };
    match steps::run_process(command, kill).await {
        StepEnd::Passed => JobResult::Succeeded,
        StepEnd::Failed => JobResult::Failed,
        StepEnd::Cancelled => JobResult::Cancelled,
    }
}

/// The command the real runner would run `path` with, or why it will not.
fn hook_command(path: &Path, ctx: &JobContext) -> Result<Command, String> {
    if path.extension().is_none_or(|ext| ext != "sh") {
        return Err(format!(
            "{} is not a valid path to a script. Make sure it ends in '.sh', '.ps1' or '.js'. \
             (The fake runner runs '.sh' hooks only.)",
            path.display()
        ));
    }
    if !path.is_file() {
        return Err("File doesn't exist".into());
    }
    let bash = ctx
        .lookup_path()
        .is_some_and(|dirs| std::env::split_paths(dirs).any(|dir| dir.join("bash").is_file()));
    let io = |err: std::io::Error| err.to_string();
    let mut command = if bash {
        let mut command = ctx.command("bash").map_err(io)?;
        command.args(["--noprofile", "--norc", "-e", "-o", "pipefail"]);
        command
    } else {
        let mut command = ctx.command("sh").map_err(io)?;
        command.arg("-e");
        command
    };
    command.arg(path);
    Ok(command)
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
