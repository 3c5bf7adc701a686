//! Reading what a stream holds now (runner events, dead letters) with an
//! ephemeral ordered consumer: nothing is acknowledged, no durable state is
//! left behind, the services' own consumers are untouched.

use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::StreamExt;
use gha_proto::topology;
use gha_proto::v1::RunnerEvent;
use prost::Message as _;

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub headers: Option<HeaderMap>,
    pub payload: Bytes,
    pub stream_sequence: u64,
    /// When the server stored it, Unix ms.
    pub published_unix_ms: i64,
}

/// Every message of `stream` on `filter` (all subjects when empty) stored
/// at or after `since` ago, oldest first.
pub async fn snapshot(
    jetstream: &jetstream::Context,
    stream: &str,
    filter: &str,
    since: Option<Duration>,
    timeout: Duration,
) -> anyhow::Result<Vec<Stored>> {
    let handle = jetstream
        .get_stream(stream)
        .await
        .with_context(|| format!("stream {stream}"))?;
    let deliver_policy = match since {
        Some(ago) => {
            let start_ms = crate::now_ms() - ago.as_millis() as i64;
            consumer::DeliverPolicy::ByStartTime {
                start_time: async_nats::datetime::from_nanos(i128::from(start_ms) * 1_000_000)
                    .map_err(|err| anyhow::anyhow!("--since: {err}"))?,
            }
        }
        None => consumer::DeliverPolicy::All,
    };
    let mut ordered = handle
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter.to_owned(),
            deliver_policy,
            ..Default::default()
        })
        .await
        .with_context(|| format!("reading {stream}"))?;
    let pending = ordered.info().await.context("consumer info")?.num_pending;
    let mut out = Vec::new();
    if pending == 0 {
        return Ok(out);
    }
    let mut messages = ordered.messages().await.context("consumer messages")?;
    loop {
        let next = tokio::time::timeout(timeout, messages.next())
            .await
            .with_context(|| format!("{stream}: no message within {timeout:?}"))?;
        let Some(message) = next else { break };
        let message = message.with_context(|| format!("reading {stream}"))?;
        let info = message.info().map_err(|err| anyhow::anyhow!("{err}"))?;
        let left = info.pending;
        out.push(Stored {
            subject: message.subject.to_string(),
            headers: message.headers.clone(),
            payload: message.payload.clone(),
            stream_sequence: info.stream_sequence,
            published_unix_ms: (info.published.unix_timestamp_nanos() / 1_000_000) as i64,
        });
        if left == 0 {
            break;
        }
    }
    Ok(out)
}

/// Runner events stored now, optionally of one Slurm job, oldest first;
/// undecodable ones are skipped with a warning.
pub async fn runner_events(
    jetstream: &jetstream::Context,
    slurm_job: Option<u64>,
    since: Option<Duration>,
    timeout: Duration,
) -> anyhow::Result<Vec<RunnerEvent>> {
    let filter = slurm_job.map_or_else(
        || gha_proto::subjects::RUNNER_EVENTS_ALL.to_owned(),
        gha_proto::subjects::runner_events,
    );
    let stored = snapshot(
        jetstream,
        topology::RUNNER_EVENTS_STREAM,
        &filter,
        since,
        timeout,
    )
    .await?;
    let mut events: Vec<RunnerEvent> = stored
        .into_iter()
        .filter_map(|message| match RunnerEvent::decode(message.payload) {
            Ok(event) => Some(event),
            Err(err) => {
                tracing::warn!(subject = %message.subject, error = %err, "skipping an undecodable event");
                None
            }
        })
        .collect();
    // Redeliveries of one event (same launcher, same sequence) show once.
    events.sort_by_key(|event| (event.slurm_job_id, event.sequence));
    events.dedup_by_key(|event| (event.slurm_job_id, event.sequence));
    events.sort_by_key(|event| (event.at_unix_ms, event.slurm_job_id, event.sequence));
    Ok(events)
}
