//! Spending the rate-limit budget evenly: a token bucket refilled at
//! `budget / hour`, from which each poll pass takes the requests GitHub
//! counted (a 304 costs nothing). When the bucket is empty, the next pass
//! waits until it holds enough again. What GitHub reports left of the
//! token's budget after every pass bounds it too (the token may be shared
//! with the scheduler and other tools): a tenth of the limit is left for
//! others, the rest spread until the window resets, and the bucket never
//! holds more than that. Limits GitHub announces (a spent primary budget
//! until `reset`, a secondary limit's `retry-after`) stop all requests
//! until they lift.

use std::time::Duration;

use tokio::time::Instant;

/// The share of a token's limit the poll leaves to others.
pub const RESERVE: f64 = 0.1;

/// The pacing state.
#[derive(Debug)]
pub struct Pacer {
    /// Requests per second the budget allows.
    rate: f64,
    /// Requests per second GitHub's reported remaining budget allows, if
    /// lower.
    cap: Option<f64>,
    /// Most requests that may be spent in a burst.
    capacity: f64,
    tokens: f64,
    updated: Instant,
    /// No request before this instant (GitHub said so).
    blocked_until: Option<Instant>,
}

impl Pacer {
    /// Paces to at most `per_hour` counted requests in any hour: a sixth of
    /// the budget may go in a burst (the first sweep after a start costs
    /// one request per repository and status), the rest refills evenly.
    pub fn new(per_hour: u32, now: Instant) -> Self {
        let budget = f64::from(per_hour.max(1));
        let capacity = (budget / 6.0).max(1.0);
        let rate = ((budget - capacity) / 3600.0).max(1.0 / 3600.0);
        Self {
            rate,
            cap: None,
            capacity,
            tokens: capacity,
            updated: now,
            blocked_until: None,
        }
    }

    /// The refill rate in force.
    fn effective_rate(&self) -> f64 {
        // Never zero: an exhausted budget is a hard stop (`block_until`).
        const FLOOR: f64 = 1.0 / 3600.0;
        self.cap
            .map_or(self.rate, |cap| self.rate.min(cap))
            .max(FLOOR)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.effective_rate()).min(self.capacity);
        self.updated = now;
    }

    /// GitHub reports `remaining` of `limit` requests until the window
    /// resets in `reset_in`: spend at most what is left above a tenth of
    /// the limit (the reserve for whoever shares the token), no faster
    /// than spreading it over the time to the reset allows.
    pub fn observe_budget(&mut self, remaining: u32, limit: u32, reset_in: Duration, now: Instant) {
        self.refill(now);
        let reserve = f64::from(limit) * RESERVE;
        let spendable = (f64::from(remaining) - reserve).max(0.0);
        let seconds = reset_in.as_secs_f64().max(1.0);
        self.cap = Some(spendable / seconds);
        self.tokens = self.tokens.min(spendable);
    }

    /// Records `counted` requests spent.
    pub fn spend(&mut self, counted: u32, now: Instant) {
        self.refill(now);
        self.tokens -= f64::from(counted);
    }

    /// Stops every request until `until`.
    pub fn block_until(&mut self, until: Instant) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |known| known.max(until)));
    }

    /// The earliest instant the next pass may start.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        let budget_ready = if self.tokens >= 1.0 {
            now
        } else {
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.effective_rate())
        };
        match self.blocked_until {
            Some(blocked) if blocked > budget_ready => blocked,
            _ => budget_ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_beyond_the_burst_waits_for_the_budget() {
        let start = Instant::now();
        let mut pacer = Pacer::new(4320, start); // bursts of 720, then 1 a second
        assert_eq!(pacer.ready_at(start), start);
        pacer.spend(730, start);
        // 10 over: 11 seconds until one token is back.
        assert_eq!(pacer.ready_at(start), start + Duration::from_secs(11));
        let later = start + Duration::from_secs(11);
        assert_eq!(pacer.ready_at(later), later);
    }

    #[test]
    fn a_shrinking_reported_budget_slows_the_refill() {
        let start = Instant::now();
        let mut pacer = Pacer::new(4320, start); // bursts of 720, then 1 a second
        pacer.spend(720, start); // the burst spent: no token left
        assert_eq!(pacer.ready_at(start), start + Duration::from_secs(1));
        // GitHub: 190 of 1000 left for the next 900 s; 100 are the
        // reserve -> 90 to spend, 0.1 requests a second.
        pacer.observe_budget(190, 1000, Duration::from_secs(900), start);
        assert_eq!(pacer.ready_at(start), start + Duration::from_secs(10));
        // Plenty left: the configured rate applies again.
        pacer.observe_budget(5000, 5000, Duration::from_secs(900), start);
        assert_eq!(pacer.ready_at(start), start + Duration::from_secs(1));
    }

    #[test]
    fn a_low_reported_budget_takes_the_burst_away_and_keeps_the_reserve() {
        let start = Instant::now();
        let mut pacer = Pacer::new(100_000, start); // a burst of 16666
        // Someone else spent the token: 50 of 200 left, 20 are the reserve.
        pacer.observe_budget(50, 200, Duration::from_secs(3600), start);
        let mut now = start;
        let mut spent = 0;
        while now < start + Duration::from_secs(60) {
            now = pacer.ready_at(now);
            pacer.spend(1, now);
            spent += 1;
        }
        assert!(spent <= 31, "spent {spent} of the 30 above the reserve");
        // At the reserve, nothing is left but the hourly floor.
        pacer.observe_budget(20, 200, Duration::from_secs(3600), now);
        assert!(pacer.ready_at(now) >= now + Duration::from_secs(600));
    }

    #[test]
    fn a_pass_answered_by_304s_costs_nothing() {
        let start = Instant::now();
        let mut pacer = Pacer::new(60, start);
        pacer.spend(0, start);
        assert_eq!(pacer.ready_at(start), start);
    }

    #[test]
    fn an_announced_limit_blocks_even_with_budget_left() {
        let start = Instant::now();
        let mut pacer = Pacer::new(3600, start);
        pacer.block_until(start + Duration::from_secs(30));
        pacer.block_until(start + Duration::from_secs(5));
        assert_eq!(pacer.ready_at(start), start + Duration::from_secs(30));
    }

    #[test]
    fn the_hourly_spend_stays_within_the_budget() {
        let start = Instant::now();
        let mut pacer = Pacer::new(1000, start);
        let mut now = start;
        let mut spent = 0;
        loop {
            now = pacer.ready_at(now);
            if now >= start + Duration::from_secs(3600) {
                break;
            }
            pacer.spend(7, now);
            spent += 7;
        }
        // At most the budget, plus the overshoot of a pass started on the
        // last token.
        assert!(spent <= 1000 + 7, "spent {spent}");
        assert!(spent >= 950, "spent only {spent}");
    }
}
