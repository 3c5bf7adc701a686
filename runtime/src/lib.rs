//! What every slurm-actions binary shares at run time, and nothing else:
//!
//! - [`telemetry`]: tracing with an `RUST_LOG`-style filter, text or JSON.
//! - [`admin`]: the `/metrics` (Prometheus text) and `/healthz` endpoint.
//! - [`shutdown`]: SIGTERM/SIGINT mapped to a `CancellationToken`.
//! - [`nats`]: connection options (URLs, credentials, TLS) and connecting.
//! - [`lease`]: a lease in a KV bucket, for work one replica does at a time.
//! - [`nats_metrics`]: the connection's state as a gauge on `/metrics`.
//! - [`exit`]: errors that map to exit codes (bad config -> 64).
//! - [`entry`]: what `main` does after parsing: validate, run, exit code.
#![forbid(unsafe_code)]

pub mod admin;
pub mod entry;
pub mod exit;
pub mod lease;
pub mod nats;
pub mod nats_metrics;
pub mod shutdown;
pub mod tasks;
pub mod telemetry;

pub use entry::drive;
pub use exit::{ConfigError, Unimplemented, exit_code};
