//! What the poller reads from GitHub.

pub mod types;
