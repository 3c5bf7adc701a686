//! [`Contract`]: the typed client every service talks NATS through.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use async_nats::{Client, Subject, Subscriber};
use futures::StreamExt;

use crate::consumer::{Decode, JobEvent, TypedConsumer};
use crate::envelope::Envelope;
use crate::error::ContractError;
use crate::kv::TypedKv;
use crate::subjects;
use crate::topology;
use crate::v1::{JitConfigReply, JitConfigRequest, JobState};

/// JetStream's answer to a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Sequence of the message in its stream (of the original, for a
    /// duplicate).
    pub sequence: u64,
    /// True when the `Nats-Msg-Id` was seen within the dedup window and
    /// nothing new was stored.
    pub duplicate: bool,
}

/// The wire contract over one NATS connection.
#[derive(Clone)]
pub struct Contract {
    client: Client,
    jetstream: jetstream::Context,
}

impl Contract {
    /// Uses `client` (see `gha_runtime::nats` for connecting).
    pub fn new(client: Client) -> Self {
        let jetstream = jetstream::new(client.clone());
        Self { client, jetstream }
    }

    /// The underlying connection.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The JetStream context, for what this client does not wrap.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Creates every stream and bucket, or updates an existing one to the
    /// definitions in [`topology`], on a single server. Safe to call from
    /// every service at start.
    pub async fn ensure_topology(&self) -> Result<(), ContractError> {
        self.ensure_topology_in(topology::Layout::default()).await
    }

    /// [`Contract::ensure_topology`] with `layout`'s replicas (a cluster).
    pub async fn ensure_topology_in(&self, layout: topology::Layout) -> Result<(), ContractError> {
        for config in topology::streams_in(layout) {
            let name = config.name.clone();
            self.jetstream
                .create_or_update_stream(config)
                .await
                .map_err(|err| ContractError::Topology {
                    what: format!("stream {name}"),
                    source: err.into(),
                })?;
        }
        for config in topology::buckets_in(layout) {
            let name = config.bucket.clone();
            self.jetstream
                .create_or_update_key_value(config)
                .await
                .map_err(|err| ContractError::Topology {
                    what: format!("bucket {name}"),
                    source: err.into(),
                })?;
        }
        Ok(())
    }

    /// Publishes `message` to its JetStream stream with its `Nats-Msg-Id`
    /// and readable headers, and waits for the stream's acknowledgement.
    pub async fn publish<M: Envelope>(&self, message: &M) -> Result<Published, ContractError> {
        let subject = message.subject();
        let error = |err: crate::error::NatsError| ContractError::Publish {
            subject: subject.clone(),
            source: err,
        };
        let ack = self
            .jetstream
            .publish_with_headers(
                subject.clone(),
                message.headers(),
                message.encode_to_vec().into(),
            )
            .await
            .map_err(|err| error(err.into()))?
            .await
            .map_err(|err| error(err.into()))?;
        Ok(Published {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Publishes `message` on core NATS (no stream, no ack): for replies and
    /// results someone is waiting for right now.
    pub async fn notify<M: Envelope>(&self, message: &M) -> Result<(), ContractError> {
        self.publish_core(message.subject(), message).await
    }

    /// Answers a request on its reply subject.
    pub async fn reply<M: Envelope>(
        &self,
        reply: Subject,
        message: &M,
    ) -> Result<(), ContractError> {
        self.publish_core(reply.to_string(), message).await
    }

    async fn publish_core<M: Envelope>(
        &self,
        subject: String,
        message: &M,
    ) -> Result<(), ContractError> {
        self.client
            .publish_with_headers(
                subject.clone(),
                message.headers(),
                message.encode_to_vec().into(),
            )
            .await
            .map_err(|err| ContractError::Publish {
                subject,
                source: err.into(),
            })
    }

    /// Sends `request` and waits up to `timeout` for its reply.
    pub async fn request<Req: Envelope, Rep: Envelope>(
        &self,
        request: &Req,
        timeout: Duration,
    ) -> Result<Rep, ContractError> {
        let subject = request.subject();
        let error = |source: crate::error::NatsError| ContractError::Request {
            subject: subject.clone(),
            source,
        };
        let reply = tokio::time::timeout(
            timeout,
            self.client.request_with_headers(
                subject.clone(),
                request.headers(),
                request.encode_to_vec().into(),
            ),
        )
        .await
        .map_err(|_| error(format!("no reply within {timeout:?}").into()))?
        .map_err(|err| error(err.into()))?;
        Rep::decode_from(&reply.subject, reply.payload)
    }

    /// The launcher's request for its runner registration.
    pub async fn request_jit_config(
        &self,
        request: &JitConfigRequest,
        timeout: Duration,
    ) -> Result<JitConfigReply, ContractError> {
        self.request(request, timeout).await
    }

    /// Subscribes to requests of type `M` in `queue_group`, so replicas share
    /// them.
    pub async fn serve<M: Envelope>(
        &self,
        subject: &str,
        queue_group: &str,
    ) -> Result<Requests<M>, ContractError> {
        let subscriber = self
            .client
            .queue_subscribe(subject.to_string(), queue_group.to_string())
            .await
            .map_err(|err| ContractError::Request {
                subject: subject.into(),
                source: err.into(),
            })?;
        Ok(Requests {
            subscriber,
            _message: std::marker::PhantomData,
        })
    }

    /// The scheduler's side of JIT-config requests.
    pub async fn serve_jit_config(&self) -> Result<Requests<JitConfigRequest>, ContractError> {
        self.serve(
            subjects::SCHEDULER_JITCONFIG,
            subjects::SCHEDULER_QUEUE_GROUP,
        )
        .await
    }

    /// Opens (creating if needed) the durable consumer `config` on `stream`.
    pub async fn consumer<T: Decode>(
        &self,
        stream: &str,
        config: pull::Config,
        batch: usize,
    ) -> Result<TypedConsumer<T>, ContractError> {
        let name = config.durable_name.clone().unwrap_or_default();
        let topology_error = |err: crate::error::NatsError| ContractError::Topology {
            what: format!("consumer {name} on {stream}"),
            source: err,
        };
        let stream_handle = self
            .jetstream
            .get_stream(stream)
            .await
            .map_err(|err| topology_error(err.into()))?;
        let consumer = stream_handle
            .create_consumer(config)
            .await
            .map_err(|err| topology_error(err.into()))?;
        Ok(TypedConsumer::new(
            consumer,
            self.jetstream.clone(),
            name.clone(),
            batch,
        ))
    }

    /// The scheduler's consumer of demand.
    pub async fn scheduler_jobs(
        &self,
        batch: usize,
    ) -> Result<TypedConsumer<JobEvent>, ContractError> {
        self.consumer(
            topology::JOBS_STREAM,
            topology::scheduler_jobs_consumer(),
            batch,
        )
        .await
    }

    /// The job-state bucket.
    pub async fn job_states(&self) -> Result<TypedKv<JobState>, ContractError> {
        self.bucket(topology::JOBS_BUCKET).await
    }

    /// Opens an existing bucket as values of `M`.
    pub async fn bucket<M: prost::Message + Default>(
        &self,
        bucket: &str,
    ) -> Result<TypedKv<M>, ContractError> {
        let store =
            self.jetstream
                .get_key_value(bucket)
                .await
                .map_err(|err| ContractError::Topology {
                    what: format!("bucket {bucket}"),
                    source: err.into(),
                })?;
        Ok(TypedKv::new(store, bucket))
    }
}

/// Incoming requests of type `M`.
pub struct Requests<M> {
    subscriber: Subscriber,
    _message: std::marker::PhantomData<fn() -> M>,
}

/// One request and where to send its reply.
pub struct Request<M> {
    pub body: M,
    pub reply: Option<Subject>,
}

impl<M: Envelope> Requests<M> {
    /// The next request; `None` when the subscription ended. A request that
    /// does not decode is returned as an error so the caller can log it.
    pub async fn next(&mut self) -> Option<Result<Request<M>, ContractError>> {
        let message = self.subscriber.next().await?;
        Some(
            M::decode_from(&message.subject, message.payload).map(|body| Request {
                body,
                reply: message.reply,
            }),
        )
    }
}
