//! Reconciliation, at start and every interval: one `squeue` for all our
//! jobs, then each live record checked against it. Pending jobs whose demand
//! went away are cancelled; jobs that died before their runner took work are
//! submitted again (bounded); records left between `sbatch` and their write
//! adopt their Slurm job; stray jobs of ours are cancelled.

use std::collections::HashMap;
use std::sync::Arc;

use gha_proto::v1::{JobPhase, JobState, JobStatus};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::engine::{Change, Engine, EngineError, Placer, now_ms};
use crate::github::GitHubApi;
use crate::slurm::{BatchSystem, CancelOutcome, SlurmJob};
use crate::{failpoint, record};

/// What one decision says to do with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// The record's attempt is in Slurm under its name: write the id.
    Adopt {
        slurm_job_id: u64,
    },
    /// The Slurm job is pending and nobody needs it: cancel, WITHDRAWN.
    Withdraw {
        reason: String,
    },
    /// The Slurm job ended before its runner took a job while GitHub still
    /// waits: submit again (or FAILED when attempts are spent).
    Resubmit {
        reason: String,
    },
    /// The runner's Slurm job ended after it took work.
    Done {
        reason: String,
    },
    /// The submitting record has no Slurm job: hand it back to submission.
    Requeue,
}

/// Decides what a live record needs, given our Slurm jobs by name.
pub fn decide(
    state: &JobState,
    ours: &HashMap<String, SlurmJob>,
    submitting_here: bool,
    needed_elsewhere: bool,
) -> Action {
    let demand_gone = state.github_status() != JobStatus::Unspecified;
    let slurm = ours.get(&state.slurm_job_name);
    match state.phase() {
        JobPhase::Queued if record::is_submitting(state) => {
            if submitting_here {
                Action::Nothing
            } else if let Some(job) = slurm {
                Action::Adopt {
                    slurm_job_id: job.id,
                }
            } else {
                Action::Requeue
            }
        }
        JobPhase::Submitted | JobPhase::Launching | JobPhase::Running => {
            let ended = match slurm {
                None => Some("the Slurm job vanished from squeue".to_owned()),
                Some(job) if job.state.is_finished() => {
                    Some(format!("the Slurm job ended {:?}", job.state))
                }
                Some(_) => None,
            };
            match (ended, slurm) {
                (Some(reason), _) if state.phase() == JobPhase::Running => Action::Done { reason },
                (Some(reason), _) if demand_gone => Action::Done { reason },
                (Some(reason), _) => Action::Resubmit { reason },
                (None, Some(job))
                    if demand_gone
                        && state.phase() == JobPhase::Submitted
                        && job.state.is_pending()
                        && !needed_elsewhere =>
                {
                    Action::Withdraw {
                        reason: format!("GitHub job is {}", state.github_status().as_str_name()),
                    }
                }
                _ => Action::Nothing,
            }
        }
        _ => Action::Nothing,
    }
}

/// Cancels the record's pending Slurm job (verified) and marks it WITHDRAWN.
pub async fn withdraw<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    state: &JobState,
    reason: &str,
) -> Result<(), EngineError> {
    let job_id = record::job_id(state);
    let slurm_job_id = state.slurm_job_id;
    let outcome = engine
        .batch
        .cancel(slurm_job_id)
        .await
        .map_err(EngineError::Lookup)?;
    let expected = state.slurm_job_name.clone();
    engine
        .modify(job_id, |current| {
            if current.slurm_job_name == expected && !record::is_terminal(&current) {
                Change::Write(record::withdrawn(current, reason, now_ms()))
            } else {
                Change::Keep
            }
        })
        .await?;
    engine.metrics.reconcile_action("withdrawn");
    info!(
        job_id,
        repo = %state.job.as_ref().map(|j| j.repository.as_str()).unwrap_or(""),
        slurm_job_id,
        reason,
        cancel = ?outcome,
        "withdrew a pending Slurm job"
    );
    Ok(())
}

/// What one pass did, for tests and the benchmark.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    pub slurm_queries: u32,
    pub github_requests: u32,
    pub actions: u32,
}

/// One reconcile pass.
pub async fn pass<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
) -> Result<Pass, EngineError> {
    let prefix = format!("{}-", engine.settings.name_prefix);
    // Records first, Slurm second: every record in the snapshot that names
    // a Slurm job names one that existed before the query, so a job
    // submitted during the pass is never taken for vanished.
    let records = engine.live_records();
    let jobs = engine
        .batch
        .list(&prefix)
        .await
        .map_err(EngineError::Lookup)?;
    engine.metrics.slurm_jobs(&jobs);
    let mut report = Pass {
        slurm_queries: 1,
        ..Pass::default()
    };
    failpoint::hit(failpoint::DURING_RECONCILE);
    let ours: HashMap<String, SlurmJob> = jobs
        .iter()
        .map(|job| (job.name.clone(), job.clone()))
        .collect();
    for state in &records {
        let job_id = record::job_id(state);
        // Only a record whose demand is gone can be withdrawn: the
        // label-set scan is skipped for everything else.
        let needed =
            state.github_status() != JobStatus::Unspecified && engine.needed_elsewhere(state);
        let action = decide(state, &ours, engine.is_submitting_here(job_id), needed);
        if action != Action::Nothing {
            report.actions += 1;
            if let Err(err) = act(engine, state, action).await {
                warn!(job_id, error = %err, "reconcile action failed; next pass retries");
                engine.metrics.error(err.metric_label());
            }
        }
    }
    report.actions += cancel_strays(engine, &jobs, &records).await;
    let pass_number = engine
        .passes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if pass_number.is_multiple_of(u64::from(engine.settings.runner_sweep_every.max(1))) {
        let (requests, deleted) = crate::runners::sweep(engine, &records).await;
        report.github_requests += requests;
        report.actions += deleted;
    }
    Ok(report)
}

async fn act<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    state: &JobState,
    action: Action,
) -> Result<(), EngineError> {
    let job_id = record::job_id(state);
    let repo = state
        .job
        .as_ref()
        .map(|job| job.repository.clone())
        .unwrap_or_default();
    let name = state.slurm_job_name.clone();
    let attempt = state.attempt;
    let max_attempts = engine.settings.max_attempts;
    match action {
        Action::Nothing => {}
        Action::Requeue => {
            engine.remember(state);
            engine.wake.notify_one();
        }
        Action::Adopt { slurm_job_id } => {
            engine
                .modify(job_id, |current| {
                    if current.slurm_job_name == name && current.slurm_job_id == 0 {
                        Change::Write(record::submitted(current, slurm_job_id, now_ms()))
                    } else {
                        Change::Keep
                    }
                })
                .await?;
            engine.metrics.reconcile_action("adopted");
            info!(job_id, %repo, slurm_job_id, "adopted a Slurm job found by name");
        }
        Action::Withdraw { reason } => withdraw(engine, state, &reason).await?,
        Action::Resubmit { reason } | Action::Done { reason } => {
            let resubmit = state.phase() != JobPhase::Running
                && state.github_status() == JobStatus::Unspecified;
            let updated = engine
                .modify(job_id, |current| {
                    if current.slurm_job_name != name || current.attempt != attempt {
                        Change::Keep
                    } else if resubmit {
                        Change::Write(record::died_early(current, &reason, max_attempts, now_ms()))
                    } else if current.phase() == JobPhase::Submitted {
                        // Its runner never registered: the demand left
                        // before it was needed.
                        Change::Write(record::withdrawn(current, &reason, now_ms()))
                    } else {
                        Change::Write(record::done(current, &reason, now_ms()))
                    }
                })
                .await?;
            let phase = updated.as_ref().map(JobState::phase);
            let kind = match phase {
                Some(JobPhase::Queued) => "resubmitted",
                Some(JobPhase::Failed) => "failed",
                Some(JobPhase::Withdrawn) => "withdrawn",
                _ => "done",
            };
            engine.metrics.reconcile_action(kind);
            info!(job_id, %repo, slurm_job_id = state.slurm_job_id, reason = %reason, outcome = kind, "Slurm job ended");
            if state.runner_id != 0 {
                crate::runners::remove_ended(engine, state).await;
            }
            engine.wake.notify_one();
        }
    }
    Ok(())
}

/// Pending Slurm jobs of ours that no live record owns (a stale attempt,
/// a record gone terminal): cancelled.
async fn cancel_strays<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    jobs: &[SlurmJob],
    records: &[JobState],
) -> u32 {
    let owned: std::collections::HashSet<&str> = records
        .iter()
        .map(|state| state.slurm_job_name.as_str())
        .collect();
    let mut cancelled = 0;
    for job in jobs {
        let Some((job_id, _)) =
            record::parse_slurm_job_name(&engine.settings.name_prefix, &job.name)
        else {
            continue;
        };
        if !job.state.is_pending() || owned.contains(job.name.as_str()) {
            continue;
        }
        // Not in memory: check the bucket before cancelling anything.
        let Ok(Some(entry)) = engine.kv.get(&job_id.to_string()).await else {
            continue;
        };
        let state = entry.value;
        let live_owner = !record::is_terminal(&state) && state.slurm_job_name == job.name;
        if live_owner {
            engine.remember(&state);
            continue;
        }
        if let Ok(CancelOutcome::Cancelled) = engine.batch.cancel(job.id).await {
            cancelled += 1;
            engine.metrics.reconcile_action("stray_cancelled");
            info!(job_id, slurm_job_id = job.id, name = %job.name, "cancelled a stray pending Slurm job");
        }
    }
    cancelled
}

/// Runs a pass every interval (jittered) until `shutdown`; a failed pass
/// is logged and the loop goes on.
pub async fn run_loop<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: Arc<Engine<B, G, P>>,
    shutdown: CancellationToken,
) {
    let interval = engine.settings.reconcile_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let span = info_span!("reconcile");
        let outcome = pass(&engine).instrument(span).await;
        engine.metrics.reconcile_pass(match &outcome {
            Ok(_) => "ok",
            Err(err) => err.metric_label(),
        });
        match outcome {
            Ok(report) if report.actions > 0 => info!(actions = report.actions, "reconcile pass"),
            Ok(_) => {}
            Err(err) => {
                engine.metrics.error(err.metric_label());
                warn!(error = %err, "reconcile pass failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use gha_proto::v1::{Placement, QueuedJob};

    use super::*;
    use crate::slurm::SlurmState;

    /// A record between its durable name and `sbatch`.
    fn submitting(job_id: i64) -> JobState {
        let job = QueuedJob {
            job_id,
            repository: "org/repo".into(),
            labels: vec!["slurm".into()],
            ..QueuedJob::default()
        };
        record::submitting(
            record::queued(job, 1),
            Placement::default(),
            "gha",
            [0; 32],
            2,
        )
    }

    fn submitted(job_id: i64) -> JobState {
        record::submitted(submitting(job_id), 100 + job_id as u64, 3)
    }

    fn slurm(state: &JobState, slurm_state: SlurmState) -> HashMap<String, SlurmJob> {
        HashMap::from([(
            state.slurm_job_name.clone(),
            SlurmJob {
                id: state.slurm_job_id,
                name: state.slurm_job_name.clone(),
                comment: String::new(),
                state: slurm_state,
                reason: String::new(),
                nodes: String::new(),
            },
        )])
    }

    fn gone(mut state: JobState) -> JobState {
        state.github_status = JobStatus::Cancelled as i32;
        state
    }

    #[test]
    fn a_pending_job_without_demand_is_withdrawn_unless_needed() {
        let state = gone(submitted(1));
        let ours = slurm(&state, SlurmState::Pending);
        assert!(matches!(
            decide(&state, &ours, false, false),
            Action::Withdraw { .. }
        ));
        assert_eq!(decide(&state, &ours, false, true), Action::Nothing);
        let running = slurm(&state, SlurmState::Running);
        assert_eq!(decide(&state, &running, false, false), Action::Nothing);
    }

    #[test]
    fn a_job_that_died_before_taking_work_is_resubmitted_while_demand_lasts() {
        let state = submitted(1);
        let ended = slurm(&state, SlurmState::NodeFail);
        assert!(matches!(
            decide(&state, &ended, false, false),
            Action::Resubmit { .. }
        ));
        let vanished = HashMap::new();
        assert!(matches!(
            decide(&state, &vanished, false, false),
            Action::Resubmit { .. }
        ));
        assert!(matches!(
            decide(&gone(state), &ended, false, false),
            Action::Done { .. }
        ));
    }

    #[test]
    fn a_running_runner_that_ended_is_done() {
        let state = record::running(submitted(1), 4);
        let ended = slurm(&state, SlurmState::Completed);
        assert!(matches!(
            decide(&state, &ended, false, false),
            Action::Done { .. }
        ));
        let live = slurm(&state, SlurmState::Running);
        assert_eq!(decide(&state, &live, false, false), Action::Nothing);
    }

    #[test]
    fn a_record_left_between_durable_name_and_sbatch_adopts_or_requeues() {
        let state = submitting(9);
        let mut found = slurm(&state, SlurmState::Pending);
        found.get_mut(&state.slurm_job_name).unwrap().id = 77;
        assert_eq!(
            decide(&state, &found, false, false),
            Action::Adopt { slurm_job_id: 77 }
        );
        assert_eq!(
            decide(&state, &HashMap::new(), false, false),
            Action::Requeue
        );
        assert_eq!(
            decide(&state, &HashMap::new(), true, false),
            Action::Nothing
        );
    }
}
