//! GitHub's REST rate limits, per token, free of HTTP.
//!
//! - Primary: `limit` requests per window (an hour); every response counts
//!   except a `304 Not Modified` and `GET /rate_limit`. Exhausted: 403 (or
//!   429) with `x-ratelimit-remaining: 0` until `x-ratelimit-reset`.
//! - Secondary: at most `max_concurrent` requests in flight, and at most
//!   `points_per_minute` per endpoint (GET/HEAD/OPTIONS 1 point, other
//!   methods 5). Exceeded: 403 with `retry-after`.
//!
//! Source: docs.github.com, "Rate limits for the REST API" and "Best
//! practices for using the REST API".

use std::collections::HashMap;
use std::time::Duration;

use super::model::Timestamp;

/// The limits in force.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Requests per window per token (GitHub: 5000 for a PAT or an
    /// installation).
    pub primary_limit: u32,
    pub window: Duration,
    /// 403 (GitHub's usual answer) or 429.
    pub exhausted_status: u16,
    pub max_concurrent: u32,
    pub points_per_minute: u32,
    /// `retry-after` seconds on a secondary limit.
    pub retry_after: Duration,
    /// Whether a secondary limit carries `retry-after` at all (GitHub
    /// sometimes sends only the message; clients must back off anyway).
    pub send_retry_after: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            primary_limit: 5000,
            window: Duration::from_secs(3600),
            exhausted_status: 403,
            max_concurrent: 100,
            points_per_minute: 900,
            retry_after: Duration::from_secs(60),
            send_retry_after: true,
        }
    }
}

/// A token's primary budget as the `x-ratelimit-*` headers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u32,
    pub remaining: u32,
    pub used: u32,
    /// Unix seconds when the window resets.
    pub reset: i64,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Primary {
        status: u16,
        budget: Budget,
    },
    Secondary {
        retry_after: Duration,
        budget: Budget,
    },
}

#[derive(Debug, Clone, Copy)]
struct Window {
    used: u32,
    reset: Timestamp,
}

/// Accounting for every token.
#[derive(Debug, Default)]
pub struct Limiter {
    pub settings: RateLimitSettings,
    windows: HashMap<String, Window>,
    in_flight: HashMap<String, u32>,
    /// (token, endpoint) -> (minute start, points).
    points: HashMap<(String, String), (Timestamp, u32)>,
    /// Requests still to refuse with a secondary limit (a storm).
    storm: u32,
}

fn points_for(method: &str) -> u32 {
    match method {
        "GET" | "HEAD" | "OPTIONS" => 1,
        _ => 5,
    }
}

impl Limiter {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    fn window(&mut self, token: &str, now: Timestamp) -> &mut Window {
        let length =
            chrono::Duration::from_std(self.settings.window).unwrap_or(chrono::Duration::MAX);
        let window = self.windows.entry(token.to_string()).or_insert(Window {
            used: 0,
            reset: now + length,
        });
        if window.reset <= now {
            *window = Window {
                used: 0,
                reset: now + length,
            };
        }
        window
    }

    /// The token's budget now.
    pub fn budget(&mut self, token: &str, now: Timestamp) -> Budget {
        let limit = self.settings.primary_limit;
        let window = *self.window(token, now);
        Budget {
            limit,
            remaining: limit.saturating_sub(window.used),
            used: window.used,
            reset: window.reset.timestamp(),
        }
    }

    /// Refuses the next `count` requests with a secondary limit.
    pub fn start_storm(&mut self, count: u32) {
        self.storm = count;
    }

    /// Decides whether a request may proceed. If it may, it is in flight
    /// until [`Limiter::finish`].
    pub fn admit(
        &mut self,
        token: &str,
        method: &str,
        endpoint: &str,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let budget = self.budget(token, now);
        let secondary = Refusal::Secondary {
            retry_after: self.settings.retry_after,
            budget,
        };
        if self.storm > 0 {
            self.storm -= 1;
            return Err(secondary);
        }
        if self.in_flight.get(token).copied().unwrap_or(0) >= self.settings.max_concurrent {
            return Err(secondary);
        }
        let minute = chrono::Duration::seconds(60);
        let key = (token.to_string(), format!("{method} {endpoint}"));
        let entry = self.points.entry(key).or_insert((now, 0));
        if entry.0 + minute <= now {
            *entry = (now, 0);
        }
        let cost = points_for(method);
        if entry.1 + cost > self.settings.points_per_minute {
            return Err(secondary);
        }
        if budget.remaining == 0 {
            return Err(Refusal::Primary {
                status: self.settings.exhausted_status,
                budget,
            });
        }
        entry.1 += cost;
        *self.in_flight.entry(token.to_string()).or_insert(0) += 1;
        Ok(())
    }

    /// Ends an admitted request; `counts` is false for a 304 and for
    /// `/rate_limit`. Returns the budget to report.
    pub fn finish(&mut self, token: &str, counts: bool, now: Timestamp) -> Budget {
        if let Some(in_flight) = self.in_flight.get_mut(token) {
            *in_flight = in_flight.saturating_sub(1);
        }
        if counts {
            self.window(token, now).used += 1;
        }
        self.budget(token, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn t(seconds: i64) -> Timestamp {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn limiter(limit: u32) -> Limiter {
        Limiter::new(RateLimitSettings {
            primary_limit: limit,
            ..RateLimitSettings::default()
        })
    }

    #[test]
    fn each_counted_response_spends_budget_and_a_304_does_not() {
        let mut limits = limiter(3);
        limits.admit("a", "GET", "/x", t(0)).unwrap();
        assert_eq!(limits.finish("a", true, t(0)).remaining, 2);
        limits.admit("a", "GET", "/x", t(1)).unwrap();
        let budget = limits.finish("a", false, t(1));
        assert_eq!((budget.remaining, budget.used), (2, 1));
        // Another token has its own budget.
        assert_eq!(limits.budget("b", t(1)).remaining, 3);
    }

    #[test]
    fn an_exhausted_budget_refuses_until_reset() {
        let mut limits = limiter(1);
        limits.admit("a", "GET", "/x", t(0)).unwrap();
        limits.finish("a", true, t(0));
        let refusal = limits.admit("a", "GET", "/x", t(10)).unwrap_err();
        let Refusal::Primary { status, budget } = refusal else {
            panic!("{refusal:?}")
        };
        assert_eq!((status, budget.remaining), (403, 0));
        assert_eq!(budget.reset, t(3600).timestamp());
        limits.admit("a", "GET", "/x", t(3600)).unwrap();
    }

    #[test]
    fn posts_cost_five_points_per_endpoint_per_minute() {
        let mut limits = Limiter::new(RateLimitSettings {
            points_per_minute: 10,
            ..RateLimitSettings::default()
        });
        for _ in 0..2 {
            limits.admit("a", "POST", "/jit", t(0)).unwrap();
            limits.finish("a", true, t(0));
        }
        assert!(matches!(
            limits.admit("a", "POST", "/jit", t(30)),
            Err(Refusal::Secondary { .. })
        ));
        // Other endpoints have their own points; a new minute starts afresh.
        limits.admit("a", "GET", "/runs", t(30)).unwrap();
        limits.finish("a", true, t(30));
        limits.admit("a", "POST", "/jit", t(60)).unwrap();
    }

    #[test]
    fn too_many_concurrent_requests_hit_the_secondary_limit() {
        let mut limits = Limiter::new(RateLimitSettings {
            max_concurrent: 2,
            ..RateLimitSettings::default()
        });
        limits.admit("a", "GET", "/x", t(0)).unwrap();
        limits.admit("a", "GET", "/x", t(0)).unwrap();
        let refusal = limits.admit("a", "GET", "/x", t(0)).unwrap_err();
        assert!(
            matches!(refusal, Refusal::Secondary { retry_after, .. } if retry_after == Duration::from_secs(60))
        );
        limits.finish("a", true, t(0));
        limits.admit("a", "GET", "/x", t(0)).unwrap();
    }

    #[test]
    fn a_storm_refuses_exactly_its_count() {
        let mut limits = limiter(100);
        limits.start_storm(2);
        assert!(limits.admit("a", "GET", "/x", t(0)).is_err());
        assert!(limits.admit("b", "GET", "/x", t(0)).is_err());
        limits.admit("a", "GET", "/x", t(0)).unwrap();
    }
}
