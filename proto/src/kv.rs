//! A KV bucket of one protobuf message type, changed by compare-and-set.

use std::marker::PhantomData;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use futures::TryStreamExt;
use prost::Message;

use crate::error::ContractError;

/// A value with the revision it was read at: pass the revision back to
/// [`TypedKv::update`] to write only if nobody wrote in between.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<M> {
    pub value: M,
    pub revision: u64,
}

/// One revision of a key, oldest first in [`TypedKv::history`].
#[derive(Debug, Clone, PartialEq)]
pub struct Revision<M> {
    /// `None` for a delete or purge.
    pub value: Option<M>,
    pub revision: u64,
    /// When the server stored it, milliseconds since the Unix epoch.
    pub created_unix_ms: i64,
}

/// A KV bucket whose values are `M`.
#[derive(Clone)]
pub struct TypedKv<M> {
    store: kv::Store,
    bucket: String,
    _message: PhantomData<fn() -> M>,
}

impl<M: Message + Default> TypedKv<M> {
    /// Wraps an opened bucket.
    pub fn new(store: kv::Store, bucket: impl Into<String>) -> Self {
        Self {
            store,
            bucket: bucket.into(),
            _message: PhantomData,
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn kv_error(&self, key: &str, source: impl Into<crate::error::NatsError>) -> ContractError {
        ContractError::Kv {
            bucket: self.bucket.clone(),
            key: key.into(),
            source: source.into(),
        }
    }

    /// The current value of `key` and its revision; `None` if absent or
    /// deleted.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned<M>>, ContractError> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|err| self.kv_error(key, err))?;
        let Some(entry) = entry else { return Ok(None) };
        if entry.operation != Operation::Put {
            return Ok(None);
        }
        let value = M::decode(entry.value).map_err(|source| ContractError::Decode {
            message_type: std::any::type_name::<M>(),
            subject: format!("{}/{key}", self.bucket),
            source,
        })?;
        Ok(Some(Versioned {
            value,
            revision: entry.revision,
        }))
    }

    /// Writes `value` only if `key` does not exist; returns the revision.
    pub async fn create(&self, key: &str, value: &M) -> Result<u64, ContractError> {
        match self.store.create(key, value.encode_to_vec().into()).await {
            Ok(revision) => Ok(revision),
            Err(err) if err.kind() == CreateErrorKind::AlreadyExists => {
                Err(ContractError::AlreadyExists {
                    bucket: self.bucket.clone(),
                    key: key.into(),
                })
            }
            Err(err) => Err(self.kv_error(key, err)),
        }
    }

    /// Writes `value` only if `key` is still at `revision`; returns the new
    /// revision. Losing the race is [`ContractError::RevisionMismatch`].
    pub async fn update(&self, key: &str, value: &M, revision: u64) -> Result<u64, ContractError> {
        match self
            .store
            .update(key, value.encode_to_vec().into(), revision)
            .await
        {
            Ok(revision) => Ok(revision),
            Err(err) if err.kind() == UpdateErrorKind::WrongLastRevision => {
                Err(ContractError::RevisionMismatch {
                    bucket: self.bucket.clone(),
                    key: key.into(),
                    expected: revision,
                })
            }
            Err(err) => Err(self.kv_error(key, err)),
        }
    }

    /// The revisions of `key` the bucket keeps (its `history`), oldest
    /// first, with the server's time of each; empty for an unknown key.
    pub async fn history(&self, key: &str) -> Result<Vec<Revision<M>>, ContractError> {
        let entries = match self.store.history(key).await {
            Ok(entries) => entries,
            Err(err) if err.to_string().contains("no messages") => return Ok(Vec::new()),
            Err(err) => return Err(self.kv_error(key, err)),
        };
        let entries: Vec<kv::Entry> = entries
            .try_collect()
            .await
            .map_err(|err| self.kv_error(key, err))?;
        entries
            .into_iter()
            .map(|entry| {
                let value =
                    match entry.operation {
                        Operation::Put => Some(M::decode(entry.value).map_err(|source| {
                            ContractError::Decode {
                                message_type: std::any::type_name::<M>(),
                                subject: format!("{}/{key}", self.bucket),
                                source,
                            }
                        })?),
                        _ => None,
                    };
                Ok(Revision {
                    value,
                    revision: entry.revision,
                    created_unix_ms: (entry.created.unix_timestamp_nanos() / 1_000_000) as i64,
                })
            })
            .collect()
    }

    /// Every key with a current value, e.g. for a restart to rebuild its
    /// view.
    pub async fn keys(&self) -> Result<Vec<String>, ContractError> {
        let keys = self
            .store
            .keys()
            .await
            .map_err(|err| self.kv_error("*", err))?;
        keys.try_collect()
            .await
            .map_err(|err| self.kv_error("*", err))
    }
}
