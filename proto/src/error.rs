//! Errors of the typed client, in the shapes callers branch on.

/// Boxed error of the underlying NATS client.
pub type NatsError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong talking the contract over NATS.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A stream, consumer or bucket could not be created or updated.
    #[error("setting up {what}: {source}")]
    Topology {
        what: String,
        #[source]
        source: NatsError,
    },
    /// Publishing failed or JetStream did not acknowledge the message.
    #[error("publishing to {subject}: {source}")]
    Publish {
        subject: String,
        #[source]
        source: NatsError,
    },
    /// A payload is not the message its subject promises.
    #[error("decoding {message_type} from {subject}: {source}")]
    Decode {
        message_type: &'static str,
        subject: String,
        #[source]
        source: prost::DecodeError,
    },
    /// A message on a subject that carries no known message type.
    #[error("no message type is published on subject {subject}")]
    UnexpectedSubject { subject: String },
    /// `create` of a key that exists.
    #[error("key {key} already exists in bucket {bucket}")]
    AlreadyExists { bucket: String, key: String },
    /// Compare-and-set lost: the key changed since `expected`.
    #[error("key {key} in bucket {bucket} is no longer at revision {expected}")]
    RevisionMismatch {
        bucket: String,
        key: String,
        expected: u64,
    },
    /// Any other KV failure.
    #[error("bucket {bucket}, key {key}: {source}")]
    Kv {
        bucket: String,
        key: String,
        #[source]
        source: NatsError,
    },
    /// Fetching from a consumer failed.
    #[error("consuming {consumer}: {source}")]
    Consume {
        consumer: String,
        #[source]
        source: NatsError,
    },
    /// Acknowledging a message failed; it will be redelivered.
    #[error("acknowledging a message from {subject}: {source}")]
    Ack {
        subject: String,
        #[source]
        source: NatsError,
    },
    /// A request got no reply or the reply could not be sent.
    #[error("request on {subject}: {source}")]
    Request {
        subject: String,
        #[source]
        source: NatsError,
    },
}

impl ContractError {
    /// A short, stable label for metrics (`error="publish"`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Topology { .. } => "topology",
            Self::Publish { .. } => "publish",
            Self::Decode { .. } => "decode",
            Self::UnexpectedSubject { .. } => "unexpected_subject",
            Self::AlreadyExists { .. } => "already_exists",
            Self::RevisionMismatch { .. } => "revision_mismatch",
            Self::Kv { .. } => "kv",
            Self::Consume { .. } => "consume",
            Self::Ack { .. } => "ack",
            Self::Request { .. } => "request",
        }
    }
}
