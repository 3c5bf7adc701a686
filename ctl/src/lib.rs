//! `gha-ctl`: the operator's window into a slurm-actions deployment. The
//! NATS CLI shows subjects and headers but cannot decode protobuf; this
//! decodes the job records (`gha_jobs`), their kept revisions, the runner
//! events and the dead letters, and builds lifecycle traces.
//!
//! It only reads: nothing is acknowledged, no durable consumer is created.
#![forbid(unsafe_code)]

pub mod cli;
pub mod records;
pub mod render;
pub mod streams;
pub mod trace;

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use gha_proto::v1::{JobState, RunnerEvent};
use gha_proto::{Contract, TypedKv, headers, topology};
use tokio_util::sync::CancellationToken;

pub use cli::{Action, Cli, Config};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The GitHub job id of a record.
pub fn record_job_id(state: &JobState) -> i64 {
    state.job.as_ref().map_or(0, |job| job.job_id)
}

/// Runs the command until it finishes or `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    tokio::select! {
        () = shutdown.cancelled() => Ok(()),
        outcome = execute(config) => outcome,
    }
}

async fn execute(config: Config) -> anyhow::Result<()> {
    let contract = connect(&config).await?;
    let mut out = std::io::stdout().lock();
    let timeout = config.timeout;
    match config.action {
        Action::Jobs {
            filter,
            limit,
            json,
        } => {
            let kv = bucket(&contract, timeout).await?;
            let all = within(timeout, "reading gha_jobs", records::all(&kv)).await??;
            let selected = records::select(all, &filter, limit);
            if json {
                for state in &selected {
                    writeln!(out, "{}", render::record_json(state))?;
                }
            } else {
                write!(out, "{}", render::jobs_table(&selected, now_ms()))?;
            }
        }
        Action::Job { job_id, json } => {
            let kv = bucket(&contract, timeout).await?;
            let history =
                within(timeout, "reading gha_jobs", records::history(&kv, job_id)).await??;
            let Some(current) = history.iter().rev().find_map(|r| r.value.clone()) else {
                anyhow::bail!("no record of job {job_id} in {}", topology::JOBS_BUCKET);
            };
            let events = job_events(&contract, &history, timeout).await?;
            if json {
                let value = serde_json::json!({
                    "record": render::record_json(&current),
                    "revisions": history.iter().map(render::revision_json).collect::<Vec<_>>(),
                    "events": events.iter().map(render::event_json).collect::<Vec<_>>(),
                });
                writeln!(out, "{value}")?;
            } else {
                write!(
                    out,
                    "{}",
                    render::jobs_table(std::slice::from_ref(&current), now_ms())
                )?;
                writeln!(out, "\nrevisions kept ({}):", history.len())?;
                for revision in &history {
                    let (phase, slurm, reason) = revision.value.as_ref().map_or(
                        ("deleted".to_owned(), 0, String::new()),
                        |state| {
                            (
                                format!("{:?}", state.phase()).to_lowercase(),
                                state.slurm_job_id,
                                state.reason.clone(),
                            )
                        },
                    );
                    writeln!(
                        out,
                        "  {}  rev {:<6} {:<11} slurm {:<8} {}",
                        render::timestamp(revision.created_unix_ms),
                        revision.revision,
                        phase,
                        slurm,
                        reason
                    )?;
                }
                writeln!(out, "\nevents ({}):", events.len())?;
                write!(out, "{}", render::events_table(&events))?;
            }
        }
        Action::Events {
            slurm_job,
            since,
            json,
        } => {
            let events =
                streams::runner_events(contract.jetstream(), slurm_job, since, timeout).await?;
            if json {
                for event in &events {
                    writeln!(out, "{}", render::event_json(event))?;
                }
            } else {
                write!(out, "{}", render::events_table(&events))?;
            }
        }
        Action::DeadLetters { json } => {
            let stored = streams::snapshot(
                contract.jetstream(),
                topology::DEAD_LETTER_STREAM,
                "",
                None,
                timeout,
            )
            .await?;
            let rows: Vec<Vec<String>> = stored
                .iter()
                .map(|message| {
                    let header = |name| {
                        headers::get(message.headers.as_ref(), name)
                            .unwrap_or("")
                            .to_owned()
                    };
                    vec![
                        render::timestamp(message.published_unix_ms),
                        header(headers::ORIGINAL_SUBJECT),
                        header(headers::TYPE),
                        header(headers::JOB_ID),
                        header(headers::DEAD_REASON),
                    ]
                })
                .collect();
            if json {
                for row in &rows {
                    let value = serde_json::json!({
                        "at": row[0], "original_subject": row[1], "type": row[2],
                        "job_id": row[3], "reason": row[4],
                    });
                    writeln!(out, "{value}")?;
                }
            } else {
                write!(
                    out,
                    "{}",
                    render::table(&["AT", "SUBJECT", "TYPE", "JOB", "REASON"], &rows)
                )?;
            }
        }
        Action::Trace { filter, output } => {
            let kv = bucket(&contract, timeout).await?;
            let all = within(timeout, "reading gha_jobs", records::all(&kv)).await??;
            let selected = records::select(all, &filter, None);
            let mut jobs = Vec::with_capacity(selected.len());
            for record in selected {
                let revisions = records::history(&kv, record_job_id(&record)).await?;
                let events = job_events(&contract, &revisions, timeout).await?;
                jobs.push(trace::JobHistory {
                    record,
                    revisions,
                    events,
                });
            }
            jobs.reverse();
            let trace = trace::chrome_trace(&jobs);
            std::fs::write(&output, serde_json::to_vec(&trace)?)
                .with_context(|| format!("writing {}", output.display()))?;
            writeln!(
                out,
                "trace of {} jobs written to {} (open it in https://ui.perfetto.dev)",
                jobs.len(),
                output.display()
            )?;
        }
    }
    Ok(())
}

/// Connects within the timeout: an operator's command must not hang on a
/// NATS that is not there.
async fn connect(config: &Config) -> anyhow::Result<Contract> {
    let client = config.nats.connect_once("gha-ctl", config.timeout).await?;
    Ok(Contract::new(client))
}

async fn bucket(contract: &Contract, timeout: Duration) -> anyhow::Result<TypedKv<JobState>> {
    within(timeout, "opening gha_jobs", contract.job_states())
        .await?
        .context("the gha_jobs bucket (has a scheduler ever run here?)")
}

async fn within<T>(
    timeout: Duration,
    what: &str,
    future: impl Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(timeout, future)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer from NATS within {timeout:?}"))
}

/// The events of every Slurm job a record's revisions name.
async fn job_events(
    contract: &Contract,
    revisions: &[gha_proto::Revision<JobState>],
    timeout: Duration,
) -> anyhow::Result<Vec<RunnerEvent>> {
    let mut slurm_jobs: Vec<u64> = revisions
        .iter()
        .filter_map(|revision| revision.value.as_ref())
        .map(|state| state.slurm_job_id)
        .filter(|id| *id != 0)
        .collect();
    slurm_jobs.sort_unstable();
    slurm_jobs.dedup();
    let mut events = Vec::new();
    for slurm_job in slurm_jobs {
        events.extend(
            streams::runner_events(contract.jetstream(), Some(slurm_job), None, timeout).await?,
        );
    }
    events.sort_by_key(|event| (event.at_unix_ms, event.sequence));
    Ok(events)
}
