//! Performing a job's steps, in order, until one fails or the job is
//! cancelled.
//!
//! `Run` commands go to `sh -c` with the job's environment (the runner's,
//! less its `ACTIONS_RUNNER_INPUT_*` credentials, plus `GITHUB_*`), in its
//! workspace, their output in the job's log, in a process group of their
//! own, so cancelling a step kills whatever the command started too, as the
//! real runner kills a step's process tree.

use std::process::Stdio;

use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::worker::JobContext;
use crate::github::model::Step;
use crate::github::runner_api::JobResult;

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StepEnd {
    Passed,
    Failed,
    Cancelled,
}

/// Performs `steps` in order: `Failed` at the first failing step (the rest
/// are skipped), `Cancelled` once `cancel` fires, else `Succeeded`.
pub(super) async fn perform(
    steps: &[Step],
    ctx: &JobContext,
    cancel: &CancellationToken,
) -> JobResult {
    for (index, step) in steps.iter().enumerate() {
        if cancel.is_cancelled() {
            return JobResult::Cancelled;
        }
        let end = match step {
            Step::Sleep { ms } => {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(*ms)) => StepEnd::Passed,
                    () = cancel.cancelled() => StepEnd::Cancelled,
                }
            }
            Step::Run { command } => match ctx.command("sh") {
                Ok(mut sh) => {
                    sh.arg("-c").arg(command);
                    run_process(sh, cancel).await
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot open the job's log");
                    StepEnd::Failed
                }
            },
            Step::Fail => StepEnd::Failed,
            Step::Hang => {
                cancel.cancelled().await;
                StepEnd::Cancelled
            }
        };
        tracing::debug!(step = index, ?end, "step ended");
        match end {
            StepEnd::Passed => {}
            StepEnd::Failed => return JobResult::Failed,
            StepEnd::Cancelled => return JobResult::Cancelled,
        }
    }
    JobResult::Succeeded
}

/// Runs `command`: passes if it exits 0; on cancellation its process group
/// is killed and reaped before this returns.
pub(super) async fn run_process(mut command: Command, cancel: &CancellationToken) -> StepEnd {
    let program = command.as_std().get_program().to_owned();
    let spawned = command
        .stdin(Stdio::null())
        .process_group(0)
        // Should this future be dropped (the runner failed mid-job), the
        // command does not outlive it.
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            tracing::error!(error = %err, ?program, "cannot start the step");
            return StepEnd::Failed;
        }
    };
    tokio::select! {
        status = child.wait() => match status {
            Ok(status) if status.success() => StepEnd::Passed,
            Ok(status) => {
                tracing::debug!(%status, "command failed");
                StepEnd::Failed
            }
            Err(err) => {
                tracing::error!(error = %err, "waiting for the command");
                StepEnd::Failed
            }
        },
        () = cancel.cancelled() => {
            kill_process_group(&mut child).await;
            StepEnd::Cancelled
        }
    }
}

/// SIGKILLs the group `child` leads (the command and anything it started),
/// then reaps `child`. The group is signalled through `sh`'s `kill` builtin:
/// this crate has no binding to `kill(2)`, and `sh` is there by definition.
async fn kill_process_group(child: &mut Child) {
    if let Some(pid) = child.id() {
        let killed = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s KILL -- -{pid}"))
            .stdin(Stdio::null())
            .status()
            .await;
        if let Err(err) = killed {
            tracing::warn!(error = %err, pid, "cannot signal the step's process group");
        }
    }
    // The group kill covers the child; this covers a failed group kill.
    let _ = child.start_kill();
    if let Err(err) = child.wait().await {
        tracing::warn!(error = %err, "reaping the cancelled command");
    }
}
