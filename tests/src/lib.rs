//! Test support for slurm-actions: real servers started per test, and
//! bounded waiting instead of sleeps.
//!
//! - [`NatsServer`]: a JetStream `nats-server` on a free loopback port, killed
//!   and its store removed on drop (kept, with its log, when the test fails).
//! - [`Slurm`]: the single-node Slurm of `deploy/local/slurm`, started once
//!   and shared by the test run.
//! - [`registry::Registry`]: Debian's `docker-registry` on a free loopback
//!   port, optionally behind token auth, with test images pushed by skopeo.
//! - [`metrics_doc`]: `docs/metrics.md` checked against a service's real
//!   `/metrics`, both ways.
//! - [`cli`]: the checks every binary passes (`--help`, `--version`, honest
//!   refusal of what it does not do yet).
//! - [`eventually()`] / [`eventually_blocking()`]: poll a condition with a
//!   deadline.
#![forbid(unsafe_code)]

pub mod cli;
pub mod eventually;
pub mod fake_runner;
pub mod github;
pub mod metrics_doc;
pub mod nats;
pub mod paths;
pub mod registry;
pub mod slurm;

pub use eventually::{eventually, eventually_blocking};
pub use nats::NatsServer;
pub use slurm::Slurm;
