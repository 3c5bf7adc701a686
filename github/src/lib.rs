//! `gha-github`: how slurm-actions talks to GitHub, shared by the poller
//! and the scheduler (services never depend on each other's crates).
//!
//! - [`Endpoint`]: one GitHub (github.com or a GHES base URL) over HTTPS
//!   with rustls, the platform's trust store and an optional CA file
//!   ([`tls`], [`args::GitHubTlsArgs`]).
//! - [`GitHubClient`]: one identity (a token or an App installation):
//!   conditional GETs, pagination links, the reported [`Budget`], limits
//!   honoured before sending ([`limits`]), credential health
//!   ([`AuthStatus`]).
//! - [`AppCredentials`]: the App's JWT and installation tokens.
//! - [`pacing::Pacer`]: spending an hourly budget evenly.
//! - [`types`]: GitHub's payloads, read tolerantly.
#![forbid(unsafe_code)]

pub mod app;
pub mod args;
pub mod auth_status;
pub mod client;
pub mod error;
pub mod http;
pub mod limits;
pub mod pacing;
pub mod tls;
pub mod types;

pub use app::AppCredentials;
pub use auth_status::AuthStatus;
pub use client::{Auth, Budget, Endpoint, Fetched, GitHubClient};
pub use error::GitHubError;
pub use http::TransportError;
pub use tls::TlsRoots;
