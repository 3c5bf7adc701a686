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

/// The schedule of one wait: when to check next, and when to give up.
struct Schedule<'a> {
    what: &'a str,
    start: Instant,
    deadline: Duration,
    interval: Duration,
}

impl<'a> Schedule<'a> {
    fn new(what: &'a str, deadline: Duration) -> Self {
        Self {
            what,
            start: Instant::now(),
            deadline,
            interval: FIRST_INTERVAL,
        }
    }

    /// How long to wait before the next check, or the error if the deadline
    /// has passed.
    fn next_wait(&mut self) -> Result<Duration, TimedOut> {
        let waited = self.start.elapsed();
        if waited >= self.deadline {
            return Err(TimedOut {
                what: self.what.into(),
                waited,
            });
        }
        let wait = self.interval.min(self.deadline - waited);
        self.interval = (self.interval * 2)
            .min(self.deadline / 10)
            .max(FIRST_INTERVAL);
        Ok(wait)
    }
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
    let mut schedule = Schedule::new(what, deadline);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        tokio::time::sleep(schedule.next_wait()?).await;
    }
}

/// Polls `check` until it returns `Some`, for at most `deadline`, blocking
/// the thread: for fixtures that run outside a runtime.
pub fn eventually_blocking<T>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let mut schedule = Schedule::new(what, deadline);
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        std::thread::sleep(schedule.next_wait()?);
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
