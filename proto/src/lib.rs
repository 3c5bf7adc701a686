//! The wire contract of slurm-actions, and nothing else of substance.
//!
//! - [`v1`]: the protobuf messages, compiled from `proto/slurm_actions/v1/`.
//! - [`subjects`]: every NATS subject name, once.
//! - [`topology`]: every JetStream stream, consumer and KV bucket.
//! - [`job_env`]: the environment the scheduler gives a runner's Slurm job.
//! - [`headers`]: the NATS headers that make messages readable with the NATS
//!   CLI without decoding protobuf.
//! - [`Contract`], [`TypedKv`], [`TypedConsumer`]: a thin typed client over
//!   async-nats.
//!
//! `proto/README.md` documents each subject for operators.
#![forbid(unsafe_code)]

pub mod client;
pub mod consumer;
pub mod envelope;
pub mod error;
pub mod headers;
pub mod job_env;
pub mod kv;
pub mod subjects;
pub mod topology;

/// Generated protobuf messages, package `slurm_actions.v1`.
#[allow(clippy::all, unused_qualifications, rust_2018_idioms)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/slurm_actions.v1.rs"));
}

pub use client::Contract;
pub use consumer::{Delivery, JobEvent, TypedConsumer};
pub use envelope::Envelope;
pub use error::ContractError;
pub use kv::{Revision, TypedKv, Versioned};
