//! `request` over NATS: publish an `UnpackRequest` to `GHA_UNPACK`, wait
//! for its `UnpackResult`.
//!
//! The connection is retried in the background by the client, so every
//! wait here has a deadline: no connection within `--connect-timeout` (or
//! a connection lost mid-request and not back within it) is
//! [`NatsUnreachable`], naming the servers. When the connection comes back
//! the request is published again under a new `Nats-Msg-Id`: its result
//! may have gone out while this client was away, and the service answers
//! a request id it has finished from its record, without a second unpack.

use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::connection::State;
use futures::StreamExt;
use gha_proto::consumer::Decode;
use gha_proto::v1::{UnpackRequest, UnpackResult, UnpackStatus};
use gha_proto::{Contract, Envelope, subjects};
use gha_runtime::nats::NatsConfig;
use tokio::time::Instant;

use super::RequestConfig;
use crate::cli::parse_platform;

/// How often the connection's state is looked at while waiting.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// NATS could not be reached, or went away and did not come back.
#[derive(Debug, thiserror::Error)]
#[error("NATS at {servers} is unreachable: {detail}")]
pub struct NatsUnreachable {
    /// The servers tried, without credentials.
    pub servers: String,
    pub detail: String,
}

/// `scheme://host:port` of each server, comma-separated: never userinfo.
pub fn describe_servers(config: &NatsConfig) -> String {
    config
        .servers
        .iter()
        .map(|server| format!("{}://{}:{}", server.scheme(), server.host(), server.port()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn over_nats(config: &RequestConfig, nats: &NatsConfig) -> anyhow::Result<String> {
    let deadline = Instant::now() + config.timeout;
    let unreachable = |detail: String| NatsUnreachable {
        servers: describe_servers(nats),
        detail,
    };
    let connect_by = Instant::now() + config.connect_timeout;
    let no_connection =
        || unreachable(format!("no connection within {:?}", config.connect_timeout));
    let client = tokio::time::timeout_at(connect_by, nats.connect("gha-unpacker-request"))
        .await
        .map_err(|_| no_connection())??;
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    // Subscribe before asking, so the result cannot be missed; the flush
    // returns once the server has the subscription, i.e. once connected.
    let mut results = client
        .subscribe(subjects::unpack_result(&request_id))
        .await
        .context("subscribing to the result")?;
    match tokio::time::timeout_at(connect_by, client.flush()).await {
        Err(_) => return Err(no_connection().into()),
        Ok(Err(err)) => return Err(unreachable(err.to_string()).into()),
        Ok(Ok(())) => {}
    }
    let contract = Contract::new(client.clone());
    let request = unpack_request(config, &request_id);
    let mut asked = 0;
    ask(
        &contract,
        &request,
        asked,
        deadline.min(Instant::now() + config.connect_timeout),
    )
    .await
    .map_err(|err| match client.connection_state() {
        State::Connected => err,
        _ => unreachable(format!(
            "connection lost while publishing the request: {err:#}"
        ))
        .into(),
    })?;
    tracing::info!(request_id, "requested; waiting for the result");

    let mut checks = tokio::time::interval(CHECK_EVERY);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lost_since: Option<Instant> = None;
    loop {
        tokio::select! {
            message = results.next() => {
                let message = message.context("the result subscription ended")?;
                let result = UnpackResult::decode_from(&message.subject, message.payload)?;
                return match UnpackStatus::try_from(result.status) {
                    Ok(UnpackStatus::Published | UnpackStatus::AlreadyPresent) => Ok(result.path),
                    _ => bail!("unpacking {} failed: {}", config.source, result.error),
                };
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(match lost_since {
                    Some(since) => unreachable(format!(
                        "connection lost {:?} ago while waiting for the result", since.elapsed()
                    )).into(),
                    None => anyhow::anyhow!(
                        "no result within {:?} (is gha-unpacker serve running and consuming {}?)",
                        config.timeout, gha_proto::topology::UNPACK_STREAM
                    ),
                });
            }
            _ = checks.tick() => {
                let connected = client.connection_state() == State::Connected;
                match (connected, lost_since) {
                    (true, Some(_)) => {
                        lost_since = None;
                        asked += 1;
                        tracing::info!(request_id, "NATS is back; asking again in case the result went out meanwhile");
                        if let Err(err) = ask(&contract, &request, asked, deadline).await {
                            tracing::warn!(error = %format!("{err:#}"), "asking again failed; waiting on");
                        }
                    }
                    (false, None) => {
                        lost_since = Some(Instant::now());
                        tracing::warn!(
                            servers = %describe_servers(nats),
                            "lost the connection to NATS; waiting up to {:?} for it to come back",
                            config.connect_timeout
                        );
                    }
                    (false, Some(since)) if since.elapsed() >= config.connect_timeout => {
                        return Err(unreachable(format!(
                            "connection lost while waiting for the result and not back within {:?}",
                            config.connect_timeout
                        )).into());
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Publishes `request` to the stream; the `attempt`th time under a
/// `Nats-Msg-Id` of its own, so deduplication does not drop it.
async fn ask(
    contract: &Contract,
    request: &UnpackRequest,
    attempt: u32,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut headers = request.headers();
    if attempt > 0 {
        headers.insert(
            "Nats-Msg-Id",
            format!("{}-again-{attempt}", request.request_id).as_str(),
        );
    }
    let publish = async {
        contract
            .jetstream()
            .publish_with_headers(request.subject(), headers, payload(request).into())
            .await?
            .await?;
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout_at(deadline, publish)
        .await
        .map_err(|_| anyhow::anyhow!("no acknowledgement from the stream in time"))?
        .context("publishing the unpack request (is gha-unpacker serve running? it creates the GHA_UNPACK stream)")
}

/// The protobuf bytes (`Envelope` brings prost's encoding into scope).
fn payload<M: Envelope>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

fn unpack_request(config: &RequestConfig, request_id: &str) -> UnpackRequest {
    let (os, architecture, variant) = match config.platform.as_deref().map(parse_platform) {
        Some(Ok(platform)) => (
            platform.os,
            platform.architecture,
            platform.variant.unwrap_or_default(),
        ),
        _ => Default::default(),
    };
    UnpackRequest {
        request_id: request_id.to_owned(),
        source: config.source.clone(),
        ttl_seconds: config.ttl.unwrap_or(0),
        os,
        architecture,
        variant,
        apptainer: true,
        tag: config.tag.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gha_runtime::nats::NatsArgs;

    #[test]
    fn servers_are_described_without_credentials() {
        let config = NatsArgs {
            urls: vec![
                "nats://user:secret@a.example:4222".into(),
                "tls://b.example:4443".into(),
            ],
            creds_file: None,
            nkey_file: None,
            tls_ca_file: None,
        }
        .validate()
        .unwrap();
        let text = describe_servers(&config);
        assert_eq!(text, "nats://a.example:4222, tls://b.example:4443");
        assert!(!text.contains("secret"));
    }
}
