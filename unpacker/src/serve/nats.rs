//! The NATS side of the service: a durable consumer on GHA_UNPACK.
//!
//! Each `UnpackRequest` is handled in its own task (bounded), reporting
//! progress so its AckWait does not run out during a long unpack. The
//! `UnpackResult` goes to `gha.unpack.results.<request_id>` and the request
//! is acknowledged only after that publish. A redelivery of a request that
//! finished is answered from the record, not unpacked again; a transient
//! failure (registry down, shutdown) is left for redelivery instead.
//!
//! No NATS error is fatal: the consumer is set up again (with back-off)
//! whenever setting it up fails or it ends, and `/healthz` says so meanwhile.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gha_proto::v1::{UnpackRequest, UnpackResult, UnpackStatus};
use gha_proto::{Contract, Delivery, topology};
use gha_runtime::admin::Health;
use gha_runtime::nats::NatsConfig;
use gha_runtime::nats_metrics::NatsConnection;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::image::Platform;
use crate::service::{ImageRequest, Outcome, RequestError, RequestState, Service, status_name};
use crate::store::Answer;

/// How often a request under way tells the server it is still being worked on.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// Before a transiently failed request is delivered again.
const RETRY_AFTER: Duration = Duration::from_secs(15);

/// Consumes unpack requests until `shutdown`.
///
/// Never gives up on NATS: a failure to set up the topology or the
/// consumer, or a consumer that ends, is logged, marks `/healthz` failing
/// and is tried again after [`retry_delay`]; unpacks under way go on
/// meanwhile. Only a bad configuration (an unreadable credentials file)
/// ends it.
///
/// `connection` reports the client's state on `/metrics` once it is made.
pub async fn consume(
    service: Arc<Service>,
    nats: NatsConfig,
    connection: NatsConnection,
    health: Health,
    concurrency: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    health.failing("nats", "connecting");
    // Returns at once: the connection is made (and remade) in the
    // background, so every call below may meet a server that is not there.
    let client = tokio::select! {
        client = nats.connect("gha-unpacker") => client?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    connection.watch(&client);
    let contract = Contract::new(client);
    let mut consuming = Consuming {
        service,
        contract,
        health,
        permits: Arc::new(Semaphore::new(concurrency.max(1))),
        tasks: JoinSet::new(),
        concurrency,
    };
    let mut failures = 0u32;
    loop {
        let outcome = tokio::select! {
            outcome = consuming.session(&shutdown, &mut failures) => outcome,
            _ = shutdown.cancelled() => Ok(()),
        };
        match outcome {
            Ok(()) => break,
            Err(err) => {
                failures += 1;
                let delay = retry_delay(failures);
                consuming.health.failing("nats", format!("{err:#}"));
                tracing::warn!(error = %format!("{err:#}"), retry_in = ?delay, "NATS consumer not running; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        }
    }
    // Requests under way end quickly with ShuttingDown and stay unacked.
    while consuming.tasks.join_next().await.is_some() {}
    Ok(())
}

/// Before the `failures`th attempt to set the consumer up again: 250 ms,
/// doubling, at most 10 s.
pub fn retry_delay(failures: u32) -> Duration {
    let base = Duration::from_millis(250);
    base.saturating_mul(1u32 << failures.saturating_sub(1).min(6))
        .min(Duration::from_secs(10))
}

/// Consecutive delivery errors after which the consumer is set up anew.
const MAX_DELIVERY_ERRORS: u32 = 5;

/// What outlives one consumer session: the unpacks under way.
struct Consuming {
    service: Arc<Service>,
    contract: Contract,
    health: Health,
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
    concurrency: usize,
}

impl Consuming {
    /// Sets the topology and the consumer up and hands deliveries out until
    /// `shutdown` (`Ok`) or the consumer fails (`Err`, to be retried).
    async fn session(
        &mut self,
        shutdown: &CancellationToken,
        failures: &mut u32,
    ) -> anyhow::Result<()> {
        self.contract
            .ensure_topology()
            .await
            .context("creating streams and buckets")?;
        let consumer = self
            .contract
            .consumer::<UnpackRequest>(
                topology::UNPACK_STREAM,
                topology::unpacker_consumer(),
                self.concurrency,
            )
            .await?;
        let mut deliveries = consumer.messages().await?;
        self.health.ok("nats");
        *failures = 0;
        tracing::info!(consumer = consumer.name(), "consuming unpack requests");
        let mut errors = 0;
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                permit = self.permits.clone().acquire_owned() => permit.expect("never closed"),
            };
            let delivery = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => continue,
                next = deliveries.next() => next,
            };
            match delivery {
                None => anyhow::bail!("the unpack request consumer ended"),
                Some(Err(err)) => {
                    errors += 1;
                    tracing::warn!(error = %err, errors, "receiving an unpack request failed");
                    self.health.failing("nats", err.to_string());
                    if errors >= MAX_DELIVERY_ERRORS {
                        return Err(anyhow::Error::new(err)
                            .context(format!("{errors} delivery errors in a row")));
                    }
                }
                Some(Ok(delivery)) => {
                    if errors > 0 {
                        errors = 0;
                        self.health.ok("nats");
                    }
                    let (service, contract) = (self.service.clone(), self.contract.clone());
                    let span = tracing::info_span!("unpack_request", request_id = %delivery.body.request_id);
                    self.tasks.spawn(tracing::Instrument::instrument(
                        async move {
                            handle(&service, &contract, delivery).await;
                            drop(permit);
                        },
                        span,
                    ));
                }
            }
        }
    }
}

/// Handles one delivery; every error is logged, never fatal.
async fn handle(service: &Arc<Service>, contract: &Contract, delivery: Delivery<UnpackRequest>) {
    let request = delivery.body.clone();
    if !valid_request_id(&request.request_id) {
        let reason = "request_id must be 1-128 letters, digits, '-' or '_'";
        if let Err(err) = delivery.dead_letter(reason).await {
            tracing::error!(error = %err, "dead-lettering failed");
        }
        return;
    }
    let result = match service.request_state(&request.request_id) {
        RequestState::Finished(answer) if still_valid(service, &answer) => {
            tracing::info!("redelivered request: answering from the record");
            from_answer(service, &answer)
        }
        _ => {
            let outcome = with_progress(&delivery, service.request(image_request(&request))).await;
            if let Err(err) = &outcome
                && err.is_transient()
                && !delivery.is_last_delivery()
            {
                tracing::warn!(error = %err, "transient failure; leaving the request for redelivery");
                if !matches!(err, RequestError::ShuttingDown)
                    && let Err(err) = delivery.retry_after(RETRY_AFTER).await
                {
                    tracing::warn!(error = %err, "asking for redelivery failed");
                }
                return;
            }
            if let Err(err) = service.record_answer(&request.request_id, &request.source, &outcome)
            {
                tracing::error!(error = %err, "saving the answer failed");
            }
            to_result(&request, &outcome)
        }
    };
    if let Err(err) = contract.notify(&result).await {
        // Not acked: the redelivery answers from the record.
        tracing::error!(error = %err, "publishing the unpack result failed");
        return;
    }
    if let Err(err) = delivery.ack().await {
        tracing::warn!(error = %err, "acknowledging the request failed");
    }
}

/// Runs `work`, telling the server every [`PROGRESS_EVERY`] that the
/// delivery is still being worked on.
async fn with_progress<T>(delivery: &Delivery<UnpackRequest>, work: impl Future<Output = T>) -> T {
    let mut ticks = tokio::time::interval(PROGRESS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    tokio::pin!(work);
    loop {
        tokio::select! {
            value = &mut work => return value,
            _ = ticks.tick() => {
                if let Err(err) = delivery.in_progress().await {
                    tracing::warn!(error = %err, "reporting progress failed");
                }
            }
        }
    }
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A finished answer is still good unless its image has since gone.
fn still_valid(service: &Service, answer: &Answer) -> bool {
    match &answer.digest {
        Some(digest) => service.store().image(digest).is_some(),
        None => true,
    }
}

fn image_request(request: &UnpackRequest) -> ImageRequest {
    let platform = (!request.os.is_empty() || !request.architecture.is_empty()).then(|| Platform {
        os: if request.os.is_empty() {
            "linux".to_owned()
        } else {
            request.os.clone()
        },
        architecture: request.architecture.clone(),
        variant: (!request.variant.is_empty()).then(|| request.variant.clone()),
    });
    ImageRequest {
        source: request.source.clone(),
        ttl: (request.ttl_seconds > 0).then(|| Duration::from_secs(request.ttl_seconds)),
        platform,
        // proto3 cannot tell "false" from "unset": the wire default is the
        // publishers' default, on.
        apptainer: request.apptainer.then_some(true),
        tag: (!request.tag.is_empty()).then(|| request.tag.clone()),
    }
}

fn to_result(request: &UnpackRequest, outcome: &Result<Outcome, RequestError>) -> UnpackResult {
    let mut result = UnpackResult {
        request_id: request.request_id.clone(),
        source: request.source.clone(),
        ..Default::default()
    };
    match outcome {
        Ok(outcome) => {
            result.status = status_of(status_name(outcome.status)) as i32;
            fill_from_record(&mut result, &outcome.record);
            result.duration_ms = outcome.timings.total_ms;
        }
        Err(err) => {
            result.status = UnpackStatus::Failed as i32;
            result.error = err.to_string();
        }
    }
    result
}

fn from_answer(service: &Service, answer: &Answer) -> UnpackResult {
    let mut result = UnpackResult {
        request_id: answer.request_id.clone(),
        source: answer.source.clone(),
        status: status_of(&answer.status) as i32,
        error: answer.error.clone().unwrap_or_default(),
        ..Default::default()
    };
    if let Some(record) = answer
        .digest
        .as_ref()
        .and_then(|d| service.store().image(d))
    {
        fill_from_record(&mut result, &record);
    }
    result
}

fn fill_from_record(result: &mut UnpackResult, record: &crate::store::ImageRecord) {
    result.manifest_digest = record.digest.to_string();
    result.path = record.path.display().to_string();
    result.tag_path = record
        .tag_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    result.bytes_downloaded = record.bytes_downloaded;
    result.files_written = record.files_written;
    result.expires_at_unix_ms = record.expires_unix_ms;
}

fn status_of(name: &str) -> UnpackStatus {
    match name {
        "published" => UnpackStatus::Published,
        "already_present" => UnpackStatus::AlreadyPresent,
        _ => UnpackStatus::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_ten_seconds() {
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]
        );
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn request_ids_are_subject_safe() {
        assert!(valid_request_id("ci-123_a"));
        for bad in ["", "a.b", "a*", "a>", "a b", &"x".repeat(129)] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn empty_proto_fields_take_the_defaults() {
        let request = image_request(&UnpackRequest {
            request_id: "r".into(),
            source: "oci:/x".into(),
            ..Default::default()
        });
        assert_eq!(request.ttl, None);
        assert_eq!(request.platform, None);
        assert_eq!(request.apptainer, None);
        assert_eq!(request.tag, None);
        let arm = image_request(&UnpackRequest {
            architecture: "arm64".into(),
            variant: "v8".into(),
            ..Default::default()
        });
        let platform = arm.platform.unwrap();
        assert_eq!(
            (platform.os.as_str(), platform.variant.as_deref()),
            ("linux", Some("v8"))
        );
    }
}
