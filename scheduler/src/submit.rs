//! Submission, exactly once: the attempt's name and claim hash are durable
//! before `sbatch` runs; a failed or crashed submission is looked up by
//! name before anything is submitted again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gha_proto::v1::{JobPhase, JobState};
use secrecy::SecretString;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::admission::Candidate;
use crate::engine::{Change, Engine, EngineError, Placer, now_ms};
use crate::github::GitHubApi;
use crate::slurm::{BatchError, BatchSystem, Submission};
use crate::{claim, failpoint, record};

/// Name of the claim variable in the job's environment.
pub const CLAIM_ENV: &str = "GHA_CLAIM";

/// Delay before a transiently failed submission is tried again.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Starts admitted jobs, `submit_concurrency` at a time, until `shutdown`.
pub async fn drive<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: Arc<Engine<B, G, P>>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(engine.settings.submit_concurrency.max(1)));
    loop {
        let next = engine.admission.lock().expect("admission lock").next();
        let Some(candidate) = next else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = engine.wake.notified() => continue,
            }
        };
        if !engine
            .submitting
            .lock()
            .expect("submitting lock")
            .insert(candidate.job_id)
        {
            continue;
        }
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => permit.expect("never closed"),
        };
        let engine = engine.clone();
        let span = info_span!("submit", job_id = candidate.job_id, repo = %candidate.repository);
        tokio::spawn(
            async move {
                let _permit = permit;
                submit_candidate(&engine, candidate).await;
            }
            .instrument(span),
        );
    }
}

async fn submit_candidate<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Arc<Engine<B, G, P>>,
    candidate: Candidate,
) {
    let job_id = candidate.job_id;
    let outcome = submit(engine, job_id).await;
    engine
        .submitting
        .lock()
        .expect("submitting lock")
        .remove(&job_id);
    match outcome {
        Ok(Some(state)) => {
            engine.remember(&state);
            if record::is_submitting(&state) {
                // Transient failure and no job by that name: try again soon.
                retry_later(engine.clone(), candidate);
            }
        }
        Ok(None) => {}
        Err(err) => {
            warn!(job_id, error = %err, "submission failed; will retry");
            engine.metrics.error(err.metric_label());
            retry_later(engine.clone(), candidate);
        }
    }
    engine.wake.notify_one();
}

fn retry_later<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: Arc<Engine<B, G, P>>,
    candidate: Candidate,
) {
    engine
        .admission
        .lock()
        .expect("admission lock")
        .finish(candidate.job_id);
    tokio::spawn(async move {
        tokio::time::sleep(RETRY_DELAY).await;
        engine
            .admission
            .lock()
            .expect("admission lock")
            .wait(candidate);
        engine.wake.notify_one();
    });
}

/// Submits the next attempt of `job_id` if its record says one is due.
/// Returns the record as it stands afterwards.
pub async fn submit<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    job_id: i64,
) -> Result<Option<JobState>, EngineError> {
    let Some(current) = engine.kv.get(&job_id.to_string()).await? else {
        return Ok(None);
    };
    let state = current.value;
    if state.phase() != JobPhase::Queued {
        return Ok(Some(state));
    }
    let job = state.job.clone().unwrap_or_default();
    let decision = match engine.placer.place(&job) {
        Ok(decision) => decision,
        Err(refusal) => {
            engine.metrics.unplaceable(refusal.metric_label());
            let reason = refusal.to_string();
            return engine
                .modify(job_id, |state| {
                    if state.phase() == JobPhase::Queued {
                        Change::Write(record::unplaceable(state, &reason, now_ms()))
                    } else {
                        Change::Keep
                    }
                })
                .await;
        }
    };

    // A crash may have come between the durable name and sbatch (or between
    // sbatch and the record): the name tells whether the job exists.
    if record::is_submitting(&state)
        && let Some(found) = find_by_name(engine, &state.slurm_job_name).await?
    {
        engine.metrics.submission("adopted");
        info!(job_id, slurm_job_id = found, name = %state.slurm_job_name, "adopted a Slurm job submitted before a crash");
        return mark_submitted(engine, job_id, &state.slurm_job_name, found).await;
    }
    let (claim, claim_hash) = claim::generate();
    let placement = decision.placement.clone();
    let prefix = engine.settings.name_prefix.clone();
    let Some(state) = engine
        .modify(job_id, |state| {
            if state.phase() != JobPhase::Queued {
                Change::Keep
            } else if record::is_submitting(&state) {
                Change::Write(record::reclaimed(state, claim_hash, now_ms()))
            } else {
                Change::Write(record::submitting(
                    state,
                    placement.clone(),
                    &prefix,
                    claim_hash,
                    now_ms(),
                ))
            }
        })
        .await?
    else {
        return Ok(None);
    };
    if state.phase() != JobPhase::Queued {
        return Ok(Some(state));
    }
    failpoint::hit(failpoint::AFTER_SUBMITTING_WRITE);

    let submission = submission(engine, &state, decision.sbatch_args, claim);
    let started = Instant::now();
    let outcome = engine.batch.submit(&submission).await;
    engine
        .metrics
        .submit_seconds(started.elapsed().as_secs_f64());
    match outcome {
        Ok(slurm_job_id) => {
            failpoint::hit(failpoint::AFTER_SBATCH);
            engine.metrics.submission("submitted");
            info!(job_id, slurm_job_id, name = %state.slurm_job_name, attempt = state.attempt, "submitted");
            mark_submitted(engine, job_id, &state.slurm_job_name, slurm_job_id).await
        }
        Err(BatchError::Rejected(message)) => {
            engine.metrics.submission("rejected");
            warn!(job_id, name = %state.slurm_job_name, reason = %message, "Slurm rejected the submission");
            let reason = format!("sbatch rejected: {message}");
            engine
                .modify(job_id, |state| {
                    if record::is_submitting(&state) {
                        let failed = record::died_early(state, &reason, 0, now_ms());
                        Change::Write(failed)
                    } else {
                        Change::Keep
                    }
                })
                .await
        }
        Err(err @ BatchError::Transient { .. }) => {
            engine.metrics.submission("transient");
            warn!(job_id, name = %state.slurm_job_name, error = %err, "sbatch failed; looking the job up by name");
            match find_by_name(engine, &state.slurm_job_name).await? {
                Some(found) => {
                    engine.metrics.submission("adopted");
                    mark_submitted(engine, job_id, &state.slurm_job_name, found).await
                }
                None => Ok(Some(state)),
            }
        }
    }
}

async fn find_by_name<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    name: &str,
) -> Result<Option<u64>, EngineError> {
    match engine.batch.find_by_name(name).await {
        Ok(jobs) => Ok(jobs.iter().map(|job| job.id).max()),
        Err(err) => {
            // Unknown whether it exists: do not submit again now.
            warn!(name, error = %err, "squeue failed while looking a job up by name");
            Err(EngineError::Lookup(err))
        }
    }
}

async fn mark_submitted<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    job_id: i64,
    name: &str,
    slurm_job_id: u64,
) -> Result<Option<JobState>, EngineError> {
    engine
        .modify(job_id, |state| {
            if state.slurm_job_name == name && state.slurm_job_id == 0 {
                if state.phase() == JobPhase::Queued {
                    Change::Write(record::submitted(state, slurm_job_id, now_ms()))
                } else {
                    // The launcher claimed first (it can start within a
                    // second): keep its phase, record the id.
                    let mut next = state;
                    next.slurm_job_id = slurm_job_id;
                    Change::Write(next)
                }
            } else {
                Change::Keep
            }
        })
        .await
}

fn submission<B, G, P>(
    engine: &Engine<B, G, P>,
    state: &JobState,
    placement_args: Vec<String>,
    claim: SecretString,
) -> Submission {
    let settings = &engine.settings;
    let placement = state.placement.clone().unwrap_or_default();
    let mut env = settings.job_env.clone();
    env.extend([
        ("GHA_JOB_ID".to_owned(), record::job_id(state).to_string()),
        (
            "GHA_CORRELATION_ID".to_owned(),
            state.correlation_id.clone(),
        ),
        ("GHA_RUNNER_IMAGE".to_owned(), placement.image.clone()),
        ("GHA_RUNNER_RUNTIME".to_owned(), placement.runtime.clone()),
        ("GHA_RUNNER_CLUSTER".to_owned(), settings.cluster.clone()),
    ]);
    Submission {
        name: state.slurm_job_name.clone(),
        comment: state.correlation_id.clone(),
        placement_args,
        signal_grace_seconds: settings.signal_grace_seconds,
        env,
        secret_env: vec![(CLAIM_ENV.to_owned(), claim)],
        script: format!("#!/bin/sh\nexec {}\n", settings.launcher_command),
        output: settings.job_output.clone(),
    }
}
