//! What the poller reads from GitHub, and how.

pub mod app;
pub mod client;
pub mod types;

pub use app::AppCredentials;
pub use client::{Auth, Budget, Fetched, GitHubClient, GitHubError};
