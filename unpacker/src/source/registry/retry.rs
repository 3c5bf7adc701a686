//! When a registry request is tried again, and after how long: bounded
//! attempts with jittered exponential backoff, `Retry-After` honoured.
//!
//! Decisions only; the client sleeps and re-sends.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Bounds on retrying connection errors, 429 and 5xx answers, and on
/// resuming a blob read that broke off.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Tries of one request in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second try; it doubles after each failure.
    pub first_delay: Duration,
    /// The longest wait between two tries, `Retry-After` included.
    pub max_delay: Duration,
    /// How often one blob read may be resumed after the connection broke.
    pub blob_resumes: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            blob_resumes: 5,
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1-based): exponential,
    /// capped, with up to half of it taken off at random so that parallel
    /// layer downloads do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let full = self
            .first_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let jitter = random_fraction();
        full.mul_f64(1.0 - jitter / 2.0)
    }

    /// The wait a `Retry-After` header asks for, capped at `max_delay`;
    /// `None` when it is absent or an HTTP date (then back off as usual).
    pub fn retry_after(&self, header: Option<&str>) -> Option<Duration> {
        let seconds: u64 = header?.trim().parse().ok()?;
        Some(Duration::from_secs(seconds).min(self.max_delay))
    }

    /// Whether another try is allowed after `attempt` tries.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.attempts.max(1)
    }
}

/// Statuses that say "later": rate limiting and server-side trouble.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || ((500..=599).contains(&status) && status != 501)
}

/// A number in `[0, 1)`, from the standard library's per-process random
/// hash keys: jitter needs no more than that.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            blob_resumes: 2,
        }
    }

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let policy = policy();
        for (attempt, full_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let delay = policy.backoff(attempt).as_millis();
            assert!(
                (full_ms / 2..=full_ms).contains(&delay),
                "attempt {attempt}: {delay} ms not in [{}, {full_ms}]",
                full_ms / 2
            );
        }
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = policy();
        assert!(policy.allows_another(3));
        assert!(!policy.allows_another(4));
        let once = RetryPolicy {
            attempts: 0,
            ..policy
        };
        assert!(!once.allows_another(1), "0 attempts still means one try");
    }

    #[test]
    fn retry_after_seconds_are_honoured_up_to_the_cap() {
        let policy = policy();
        assert_eq!(policy.retry_after(Some("0")), Some(Duration::from_secs(0)));
        assert_eq!(
            policy.retry_after(Some("120")),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(
            policy.retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(policy.retry_after(None), None);
    }

    #[test]
    fn which_statuses_are_retried() {
        for status in [429, 408, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 206, 400, 401, 403, 404, 416, 501] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }
}
