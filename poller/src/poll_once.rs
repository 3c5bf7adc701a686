//! `gha-poller poll-once`: one reconciliation pass over every watched
//! repository, printing the jobs that would be published and publishing
//! nothing: the operator's way to see what the poller sees. A one-shot
//! command waits for a rate limit that lifts within `--max-wait` (a
//! secondary limit's `retry-after`, a spent budget) and finishes.

use anyhow::Context;
use gha_proto::v1::{JobSource, QueuedJob};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

use crate::cli::GitHubConfig;
use crate::observe::Observation;
use crate::poll::RepoPoller;
use crate::repos;

/// A `QueuedJob` as one JSON object, fields in snake_case.
pub fn queued_job_json(job: &QueuedJob) -> Value {
    let source = match JobSource::try_from(job.source) {
        Ok(JobSource::Webhook) => "webhook",
        Ok(JobSource::Poll) => "poll",
        _ => "unspecified",
    };
    json!({
        "job_id": job.job_id,
        "run_id": job.run_id,
        "run_attempt": job.run_attempt,
        "repository_id": job.repository_id,
        "repository": job.repository,
        "owner": job.owner,
        "labels": job.labels,
        "workflow_name": job.workflow_name,
        "job_name": job.job_name,
        "head_branch": job.head_branch,
        "head_sha": job.head_sha,
        "html_url": job.html_url,
        "created_at_unix_ms": job.created_at_unix_ms,
        "source": source,
        "observed_at_unix_ms": job.observed_at_unix_ms,
        "installation_id": job.installation_id,
    })
}

fn print_job(job: &QueuedJob, json: bool, out: &mut impl Write) -> std::io::Result<()> {
    if json {
        writeln!(out, "{}", queued_job_json(job))
    } else {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t[{}]",
            job.job_id,
            job.repository,
            job.workflow_name,
            job.job_name,
            job.labels.join(",")
        )
    }
}

/// Runs one pass and writes each queued job to `out`: JSON lines, or a
/// line of text per job. Rate limits lifting within `max_wait` are waited
/// for.
pub async fn poll_once(
    config: &GitHubConfig,
    json: bool,
    max_wait: Duration,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    let mut printed = 0;
    for client in config.clients_with(|client| client.waiting_for_limits(max_wait)) {
        let watched = repos::resolve(&client, &config.watched)
            .await
            .context("listing the watched repositories")?;
        let mut poller = RepoPoller::new(client.clone(), config.policy.clone());
        for repo in &watched {
            let now = chrono::Utc::now().timestamp_millis();
            let pass = poller
                .poll(repo, now)
                .await
                .with_context(|| format!("polling {repo}"))?;
            for (job_id, refusal) in &pass.refused {
                tracing::info!(repository = %repo, job_id, reason = %refusal, "refused");
            }
            for observation in pass.observations {
                let Observation::Queued(job) = observation else {
                    continue;
                };
                print_job(&job, json, out)?;
                printed += 1;
            }
        }
        if let Some(budget) = client.budget() {
            tracing::info!(
                remaining = budget.remaining,
                limit = budget.limit,
                reset = budget.reset,
                "rate limit"
            );
        }
    }
    Ok(printed)
}
