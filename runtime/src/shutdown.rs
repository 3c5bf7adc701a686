//! The one place signals are handled.
//!
//! The first SIGTERM or SIGINT cancels the token the program was handed, and
//! the program winds down. If it has not finished within the grace period, or
//! a second signal arrives, [`Shutdown::run`] stops waiting and returns
//! [`Forced`], so `main` exits without the process being killed mid-log.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Shutdown did not finish in time.
#[derive(Debug, thiserror::Error)]
#[error("forced shutdown: {0}")]
pub struct Forced(&'static str);

/// Graceful-then-forced shutdown driven by signals.
pub struct Shutdown {
    graceful: CancellationToken,
    forced: tokio::sync::watch::Receiver<Option<&'static str>>,
}

impl Shutdown {
    /// Starts listening for SIGTERM and SIGINT. Must be called within a tokio
    /// runtime.
    pub fn on_signals(grace: Duration) -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let graceful = CancellationToken::new();
        let (force, forced) = tokio::sync::watch::channel(None);
        let cancel = graceful.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                signal = name,
                grace_seconds = grace.as_secs(),
                "shutting down"
            );
            cancel.cancel();
            let reason = tokio::select! {
                _ = term.recv() => "second signal",
                _ = int.recv() => "second signal",
                _ = tokio::time::sleep(grace) => "grace period exceeded",
            };
            let _ = force.send(Some(reason));
        });
        Ok(Self { graceful, forced })
    }

    /// The token to hand to the program: cancelled on the first signal.
    pub fn token(&self) -> CancellationToken {
        self.graceful.clone()
    }

    /// Runs `program` to completion, or until shutdown is forced.
    pub async fn run<T>(
        &self,
        program: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let mut forced = self.forced.clone();
        tokio::select! {
            result = program => result,
            reason = forced.wait_for(Option::is_some) => {
                let reason = reason.ok().and_then(|r| *r).unwrap_or("signal task ended");
                Err(Forced(reason).into())
            }
        }
    }
}
