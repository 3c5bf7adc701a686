//! Waiting for a condition with a deadline: the replacement for sleeps.
//!
//! The check runs at once, then every `interval` (growing gently to a tenth
//! of the deadline) until it yields `Some` or the deadline passes. The error
//! names what was awaited, so a timed-out test says what it waited for.

use std::future::Future;
use std::time::{Duration, Instant};

/// What a test waited for in vain.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {waited:?} waiting for {what}")]
pub struct TimedOut {
    pub what: String,
    pub waited: Duration,
}

const FIRST_INTERVAL: Duration = Duration::from_millis(10);

fn next_interval(current: Duration, deadline: Duration) -> Duration {
    (current * 2).min(deadline / 10).max(FIRST_INTERVAL)
}

/// Polls the async `check` until it returns `Some`, for at most `deadline`.
pub async fn eventually<T, F, Fut>(
    what: &str,
    deadline: Duration,
    mut check: F,
) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut interval = FIRST_INTERVAL;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        let waited = start.elapsed();
        if waited >= deadline {
            return Err(TimedOut {
                what: what.into(),
                waited,
            });
        }
        tokio::time::sleep(interval.min(deadline - waited)).await;
        interval = next_interval(interval, deadline);
    }
}

/// Polls `check` until it returns `Some`, for at most `deadline`, blocking
/// the thread: for fixtures that run outside a runtime.
pub fn eventually_blocking<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let start = Instant::now();
    let mut interval = FIRST_INTERVAL;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        let waited = start.elapsed();
        if waited >= deadline {
            return Err(TimedOut {
                what: what.into(),
                waited,
            });
        }
        std::thread::sleep(interval.min(deadline - waited));
        interval = next_interval(interval, deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn returns_the_first_value_the_check_yields() {
        let calls = Cell::new(0);
        let value = eventually_blocking("third call", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            (calls.get() == 3).then_some("ready")
        })
        .unwrap();
        assert_eq!(value, "ready");
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn gives_up_at_the_deadline_and_says_what_it_waited_for() {
        let err = eventually_blocking::<()>("the impossible", Duration::from_millis(50), || None)
            .unwrap_err();
        assert!(err.waited >= Duration::from_millis(50));
        assert!(err.to_string().contains("the impossible"), "{err}");
    }

    #[tokio::test]
    async fn async_check_is_polled_until_true() {
        let calls = Cell::new(0);
        let value = eventually("second call", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { (n >= 2).then_some(n) }
        })
        .await
        .unwrap();
        assert_eq!(value, 2);
    }
}
