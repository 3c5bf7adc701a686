//! Test support for slurm-actions: real servers started per test, and
//! bounded waiting instead of sleeps.
//!
//! - [`NatsServer`]: a JetStream `nats-server` on a free loopback port, killed
//!   and its store removed on drop (kept, with its log, when the test fails).
//! - [`NatsCluster`]: three routed JetStream `nats-server`s, any of which a
//!   test can kill and restart.
//! - [`Slurm`]: the single-node Slurm of `deploy/local/slurm`, started once
//!   and shared by the test run.
//! - [`registry::Registry`]: Debian's `docker-registry` on a free loopback
//!   port, optionally behind token auth, with test images pushed by skopeo.
//! - [`service::Service`]: a workspace binary run as a process that a test
//!   can kill, stop, pause and start again; [`service::bin`] finds it.
//! - [`workflow_stats`]: a workflow's critical path and latency percentiles.
//! - [`runner_image::RunnerImage`]: the runner image of
//!   `deploy/local/runner-image` (Debian 12 minbase + the fake runner laid
//!   out like the real one), unpacked by `gha-unpacker`, built once.
//! - [`fake_runner`]: the fake actions runner (`fake-runner`) and its
//!   layout (`run.sh`, `bin/Runner.Listener`).
//! - [`tls::TestCa`]: a CA and server certificates made per test run, so
//!   servers in tests (the GitHub emulator) speak verified TLS.
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
pub mod nats_cluster;
pub mod paths;
pub mod registry;
pub mod runner_image;
pub mod service;
pub mod slurm;
pub mod tls;
pub mod workflow_stats;

pub use eventually::{eventually, eventually_blocking};
pub use nats::NatsServer;
pub use nats_cluster::NatsCluster;
pub use slurm::Slurm;
