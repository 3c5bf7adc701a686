//! The limits GitHub announces, honoured before anything is sent: after a
//! spent primary budget (`x-ratelimit-remaining: 0`, on any answer) nothing
//! goes out until `x-ratelimit-reset`; after a secondary limit nothing goes
//! out for its `retry-after`, or, when GitHub sent none, for a back-off of
//! our own that starts at a minute and doubles on each repeat (GitHub's
//! "Best practices for using the REST API").
//!
//! One gate per identity (token or installation): every request of the
//! poll, the webhook endpoint or the scheduler passes through it.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::GitHubError;

/// GitHub's floor for a secondary limit without `retry-after`.
pub const SECONDARY_BACKOFF: Duration = Duration::from_secs(60);
/// The longest back-off of our own.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
struct State {
    /// Nothing is sent before this instant; why.
    blocked: Option<(Instant, Blocked)>,
    /// Secondary limits in a row (the back-off doubles with each).
    strikes: u32,
}

#[derive(Debug, Clone, Copy)]
enum Blocked {
    Primary { reset: i64 },
    Secondary,
}

/// The pacing state of one identity.
#[derive(Debug)]
pub struct LimitGate {
    first_backoff: Duration,
    state: Mutex<State>,
}

impl LimitGate {
    /// A gate whose own back-off starts at `first_backoff` (GitHub asks
    /// for at least [`SECONDARY_BACKOFF`]; tests shorten it).
    pub fn new(first_backoff: Duration) -> Self {
        Self {
            first_backoff,
            state: Mutex::new(State::default()),
        }
    }

    /// The back-off to impose on the next secondary limit that comes
    /// without `retry-after`.
    pub fn own_backoff(&self) -> Duration {
        let strikes = self.state.lock().expect("gate lock").strikes.min(10);
        (self.first_backoff * 2u32.pow(strikes)).min(MAX_BACKOFF.max(self.first_backoff))
    }

    /// The error to answer without sending, if a limit is in force at
    /// `now`.
    pub fn blocked(&self, now: Instant) -> Option<GitHubError> {
        let state = self.state.lock().expect("gate lock");
        let (until, why) = state.blocked?;
        if until <= now {
            return None;
        }
        Some(match why {
            Blocked::Primary { reset } => GitHubError::RateLimited { reset },
            Blocked::Secondary => GitHubError::SecondaryLimited {
                retry_after: until - now,
            },
        })
    }

    /// Records a limit GitHub answered with at `now` (`now_unix` in Unix
    /// seconds for a primary reset); other errors change nothing.
    pub fn limited(&self, err: &GitHubError, now: Instant, now_unix: i64) {
        let mut state = self.state.lock().expect("gate lock");
        let (until, why) = match err {
            GitHubError::RateLimited { reset } => (
                now + err.retry_in(now_unix).unwrap_or_default(),
                Blocked::Primary { reset: *reset },
            ),
            GitHubError::SecondaryLimited { retry_after } => {
                state.strikes += 1;
                (now + *retry_after, Blocked::Secondary)
            }
            _ => return,
        };
        block(&mut state, until, why);
    }

    /// Records a successful answer and the budget it reported: a spent
    /// budget blocks until its reset, before GitHub has to refuse.
    pub fn answered(&self, remaining: Option<(u32, i64)>, now: Instant, now_unix: i64) {
        let mut state = self.state.lock().expect("gate lock");
        state.strikes = 0;
        if let Some((0, reset)) = remaining {
            let wait = u64::try_from(reset.saturating_sub(now_unix)).unwrap_or(0) + 1;
            block(
                &mut state,
                now + Duration::from_secs(wait),
                Blocked::Primary { reset },
            );
        }
    }
}

/// Extends the block to `until` (a shorter new limit never shortens a
/// longer one).
fn block(state: &mut State, until: Instant, why: Blocked) {
    match state.blocked {
        Some((known, _)) if known >= until => {}
        _ => state.blocked = Some((until, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW_UNIX: i64 = 1_700_000_000;

    #[test]
    fn retry_after_blocks_for_its_length_then_lifts() {
        let gate = LimitGate::new(SECONDARY_BACKOFF);
        let now = Instant::now();
        let limit = GitHubError::SecondaryLimited {
            retry_after: Duration::from_secs(2),
        };
        gate.limited(&limit, now, NOW_UNIX);
        let Some(GitHubError::SecondaryLimited { retry_after }) =
            gate.blocked(now + Duration::from_secs(1))
        else {
            panic!("not blocked")
        };
        assert_eq!(retry_after, Duration::from_secs(1));
        assert!(gate.blocked(now + Duration::from_secs(2)).is_none());
    }

    #[test]
    fn our_own_back_off_doubles_on_each_repeat_and_resets_on_success() {
        let gate = LimitGate::new(SECONDARY_BACKOFF);
        let now = Instant::now();
        assert_eq!(gate.own_backoff(), Duration::from_secs(60));
        for expected in [120, 240, 480, 900, 900] {
            let limit = GitHubError::SecondaryLimited {
                retry_after: gate.own_backoff(),
            };
            gate.limited(&limit, now, NOW_UNIX);
            assert_eq!(gate.own_backoff(), Duration::from_secs(expected));
        }
        gate.answered(Some((10, NOW_UNIX + 60)), now, NOW_UNIX);
        assert_eq!(gate.own_backoff(), Duration::from_secs(60));
    }

    #[test]
    fn a_spent_budget_blocks_until_the_reset_even_on_a_success() {
        let gate = LimitGate::new(SECONDARY_BACKOFF);
        let now = Instant::now();
        gate.answered(Some((0, NOW_UNIX + 30)), now, NOW_UNIX);
        assert!(matches!(
            gate.blocked(now + Duration::from_secs(30)),
            Some(GitHubError::RateLimited { reset }) if reset == NOW_UNIX + 30
        ));
        assert!(gate.blocked(now + Duration::from_secs(31)).is_none());
    }

    #[test]
    fn a_shorter_limit_does_not_shorten_a_longer_one() {
        let gate = LimitGate::new(SECONDARY_BACKOFF);
        let now = Instant::now();
        gate.limited(
            &GitHubError::RateLimited {
                reset: NOW_UNIX + 100,
            },
            now,
            NOW_UNIX,
        );
        let short = GitHubError::SecondaryLimited {
            retry_after: Duration::from_secs(1),
        };
        gate.limited(&short, now, NOW_UNIX);
        assert!(gate.blocked(now + Duration::from_secs(50)).is_some());
    }
}
