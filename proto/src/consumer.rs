//! Durable pull consumers that yield decoded messages in small batches.
//!
//! async-nats pre-pulls 200 messages by default and each one's AckWait starts
//! at delivery, so a slow handler would see its backlog redelivered. These
//! consumers pull a few at a time; acks are double acks (confirmed by the
//! server) so a handler acks only after its side effects and knows the ack
//! landed. A payload that does not decode is dead-lettered, never retried.

use std::marker::PhantomData;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use bytes::Bytes;
use futures::StreamExt;

use crate::envelope::Envelope;
use crate::error::ContractError;
use crate::headers;
use crate::subjects;
use crate::topology::MAX_DELIVER;
use crate::v1::{JobStatusChange, QueuedJob};

/// A message type a consumer can decode from a subject and payload.
pub trait Decode: Sized {
    /// Decodes the payload published on `subject`.
    fn decode_from(subject: &str, payload: Bytes) -> Result<Self, ContractError>;
}

impl<M: Envelope> Decode for M {
    fn decode_from(subject: &str, payload: Bytes) -> Result<Self, ContractError> {
        M::decode(payload).map_err(|source| ContractError::Decode {
            message_type: M::TYPE,
            subject: subject.into(),
            source,
        })
    }
}

/// What the GHA_JOBS stream carries, told apart by subject.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    Queued(QueuedJob),
    Status(JobStatusChange),
}

impl Decode for JobEvent {
    fn decode_from(subject: &str, payload: Bytes) -> Result<Self, ContractError> {
        match subject {
            subjects::JOBS_QUEUED => QueuedJob::decode_from(subject, payload).map(Self::Queued),
            subjects::JOBS_STATUS => {
                JobStatusChange::decode_from(subject, payload).map(Self::Status)
            }
            other => Err(ContractError::UnexpectedSubject {
                subject: other.into(),
            }),
        }
    }
}

/// A durable pull consumer of messages of type `T`.
pub struct TypedConsumer<T> {
    consumer: PullConsumer,
    jetstream: jetstream::Context,
    name: String,
    batch: usize,
    _message: PhantomData<fn() -> T>,
}

impl<T: Decode> TypedConsumer<T> {
    pub(crate) fn new(
        consumer: PullConsumer,
        jetstream: jetstream::Context,
        name: String,
        batch: usize,
    ) -> Self {
        Self {
            consumer,
            jetstream,
            name,
            batch: batch.max(1),
            _message: PhantomData,
        }
    }

    /// The durable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts pulling, `batch` messages at a time.
    pub async fn messages(&self) -> Result<Deliveries<T>, ContractError> {
        let stream = self
            .consumer
            .stream()
            .max_messages_per_batch(self.batch)
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(|err| ContractError::Consume {
                consumer: self.name.clone(),
                source: err.into(),
            })?;
        Ok(Deliveries {
            stream,
            jetstream: self.jetstream.clone(),
            consumer: self.name.clone(),
            _message: PhantomData,
        })
    }
}

/// The decoded messages of a [`TypedConsumer`], one at a time.
pub struct Deliveries<T> {
    stream: jetstream::consumer::pull::Stream,
    jetstream: jetstream::Context,
    consumer: String,
    _message: PhantomData<fn() -> T>,
}

impl<T: Decode> Deliveries<T> {
    /// The next message; `None` when the consumer's stream ended. Payloads
    /// that do not decode are dead-lettered and skipped.
    pub async fn next(&mut self) -> Option<Result<Delivery<T>, ContractError>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(err) => {
                    return Some(Err(ContractError::Consume {
                        consumer: self.consumer.clone(),
                        source: err.into(),
                    }));
                }
            };
            let subject = message.subject.to_string();
            match T::decode_from(&subject, message.payload.clone()) {
                Ok(body) => {
                    return Some(Ok(Delivery {
                        body,
                        message,
                        jetstream: self.jetstream.clone(),
                    }));
                }
                Err(err) => {
                    tracing::warn!(consumer = %self.consumer, %subject, error = %err, "dead-lettering undecodable message");
                    let delivery = Delivery {
                        body: (),
                        message,
                        jetstream: self.jetstream.clone(),
                    };
                    if let Err(dead) = delivery.dead_letter(&err.to_string()).await {
                        return Some(Err(dead));
                    }
                }
            }
        }
    }
}

/// One delivered message, decoded, with its acknowledgement handle.
pub struct Delivery<T> {
    /// The decoded message.
    pub body: T,
    message: jetstream::Message,
    jetstream: jetstream::Context,
}

impl<T> Delivery<T> {
    /// The subject it was published on.
    pub fn subject(&self) -> &str {
        self.message.subject.as_str()
    }

    /// Its headers.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.message.headers.as_ref()
    }

    /// How many times it has been delivered, this time included.
    pub fn delivered(&self) -> i64 {
        self.message.info().map(|info| info.delivered).unwrap_or(1)
    }

    /// True when the server will not deliver it again: a handler that cannot
    /// finish it now must dead-letter it instead of asking for a retry.
    pub fn is_last_delivery(&self) -> bool {
        self.delivered() >= MAX_DELIVER
    }

    /// Its sequence in the stream.
    pub fn stream_sequence(&self) -> u64 {
        self.message
            .info()
            .map(|info| info.stream_sequence)
            .unwrap_or(0)
    }

    fn ack_error(&self, source: crate::error::NatsError) -> ContractError {
        ContractError::Ack {
            subject: self.subject().into(),
            source,
        }
    }

    /// Acknowledges it and waits for the server to confirm. Call after the
    /// side effects it implies are durable.
    pub async fn ack(&self) -> Result<(), ContractError> {
        self.message
            .double_ack()
            .await
            .map_err(|err| self.ack_error(err))
    }

    /// Asks for redelivery after `delay`.
    pub async fn retry_after(&self, delay: Duration) -> Result<(), ContractError> {
        self.message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|err| self.ack_error(err))
    }

    /// Tells the server work is going on, restarting the AckWait.
    pub async fn in_progress(&self) -> Result<(), ContractError> {
        self.message
            .ack_with(AckKind::Progress)
            .await
            .map_err(|err| self.ack_error(err))
    }

    /// Copies it to `gha.dead.<stream>` with `reason` in a header, then
    /// terminates its delivery.
    pub async fn dead_letter(&self, reason: &str) -> Result<(), ContractError> {
        let (stream, sequence) = match self.message.info() {
            Ok(info) => (info.stream.to_string(), info.stream_sequence),
            Err(_) => ("unknown".to_string(), 0),
        };
        let mut map = self.message.headers.clone().unwrap_or_default();
        // The original id must not make the dead letter a "duplicate".
        map.insert(headers::NATS_MSG_ID, format!("{stream}-{sequence}"));
        headers::insert(&mut map, headers::DEAD_REASON, reason);
        headers::insert(&mut map, headers::ORIGINAL_SUBJECT, self.subject());
        headers::insert(&mut map, headers::ORIGINAL_SEQUENCE, sequence.to_string());
        let subject = subjects::dead_letter(&stream);
        let publish_error = |err: crate::error::NatsError| ContractError::Publish {
            subject: subject.clone(),
            source: err,
        };
        self.jetstream
            .publish_with_headers(subject.clone(), map, self.message.payload.clone())
            .await
            .map_err(|err| publish_error(err.into()))?
            .await
            .map_err(|err| publish_error(err.into()))?;
        self.message
            .double_ack_with(AckKind::Term)
            .await
            .map_err(|err| self.ack_error(err))
    }
}
