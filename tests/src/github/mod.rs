//! The GitHub emulator: the stand-in for github.com that every test uses.
//!
//! Real HTTP on a free loopback port, GitHub's payload shapes and headers
//! (ETags, pagination, rate limits), webhooks signed with HMAC, JIT runner
//! configs, and runners that connect and take jobs. `docs/github-emulator.md`
//! lists what is emulated, what is not, and the GitHub documentation each
//! behaviour follows.
//!
//! - [`GitHubEmulator`]: start it, set up repositories and workflow runs,
//!   inject faults, inspect requests and deliveries.
//! - [`world`]: the rules, free of HTTP, tested synchronously.
//! - [`runner_api`]: how a (fake) runner talks to it.

mod api;
pub mod auth;
mod control;
pub mod faults;
mod gate;
pub mod json;
pub mod model;
mod paginate;
pub mod ratelimit;
pub mod runner_api;
mod runner_http;
mod runners;
mod server;
mod shared;
pub mod webhooks;
pub mod world;

pub use faults::{Fault, FaultKind};
pub use model::{Conclusion, JobSpec, JobStatus, Step, WorkflowSpec};
pub use ratelimit::RateLimitSettings;
pub use runners::JitRequest;
pub use server::{EmulatorConfig, GitHubEmulator, InProcessRunner};
pub use shared::RequestRecord;
pub use webhooks::{DeliveryFault, signature_256};
pub use world::{ApiError, Settings, WebhookEvent, World};

#[cfg(test)]
mod world_tests;
