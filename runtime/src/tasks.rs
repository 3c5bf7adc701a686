//! A service's long-running tasks, supervised together: the first one
//! that ends while the service is not shutting down takes the service
//! down (its error, or "stopped unexpectedly"); a dead loop never goes
//! unnoticed.

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Tasks of one service; each returns its name when it ends.
pub type Tasks = JoinSet<anyhow::Result<&'static str>>;

/// Waits for `tasks`. A task that fails or ends before `shutdown` is
/// cancelled cancels it and is the service's error; after a shutdown, every
/// task is waited for.
pub async fn supervise(mut tasks: Tasks, shutdown: &CancellationToken) -> anyhow::Result<()> {
    while let Some(ended) = tasks.join_next().await {
        let outcome = ended.context("a task panicked").and_then(|result| result);
        let what = match outcome {
            Ok(what) => what,
            Err(err) => {
                shutdown.cancel();
                return Err(err);
            }
        };
        if !shutdown.is_cancelled() {
            shutdown.cancel();
            anyhow::bail!("{what} stopped unexpectedly");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_ending_early_takes_the_service_down() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new();
        let waiting = shutdown.clone();
        tasks.spawn(async move {
            waiting.cancelled().await;
            Ok("waits for shutdown")
        });
        tasks.spawn(async { Ok("ends at once") });
        let err = supervise(tasks, &shutdown).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("ends at once stopped unexpectedly")
        );
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn after_shutdown_every_task_is_waited_for() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new();
        for name in ["a", "b"] {
            let waiting = shutdown.clone();
            tasks.spawn(async move {
                waiting.cancelled().await;
                Ok(name)
            });
        }
        shutdown.cancel();
        supervise(tasks, &shutdown).await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_task_is_the_error_and_cancels_the_rest() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::new();
        tasks.spawn(async { anyhow::bail!("broken") });
        let err = supervise(tasks, &shutdown).await.unwrap_err();
        assert_eq!(err.to_string(), "broken");
        assert!(shutdown.is_cancelled());
    }
}
