//! What the poller reads from GitHub, and how.

pub mod client;
pub mod types;

pub use client::{Budget, Fetched, GitHubClient, GitHubError};
