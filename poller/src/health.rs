//! What `/healthz` says, kept true while the service runs: the NATS
//! connection as it is now, whether GitHub accepts each identity's
//! credentials (a 401, or an installation token that cannot be minted),
//! and whether each poll loop finished a pass lately.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use gha_github::AuthStatus;
use gha_runtime::admin::Health;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the checks are refreshed.
pub const REFRESH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct LoopStatus {
    /// The last successful pass, or the loop's start before the first.
    since: Instant,
    succeeded: bool,
    last_error: Option<String>,
}

/// The poll loops' progress, by identity (`token`, `installation 7`).
#[derive(Debug, Default)]
pub struct PollStatus {
    loops: Mutex<BTreeMap<String, LoopStatus>>,
}

impl PollStatus {
    /// Loop `identity` started at `now` (its first pass is not late yet).
    pub fn started(&self, identity: &str, now: Instant) {
        self.loops.lock().expect("poll status lock").insert(
            identity.into(),
            LoopStatus {
                since: now,
                succeeded: false,
                last_error: None,
            },
        );
    }

    /// A pass of `identity` succeeded at `now`.
    pub fn succeeded(&self, identity: &str, now: Instant) {
        let mut loops = self.loops.lock().expect("poll status lock");
        let status = loops.entry(identity.into()).or_insert(LoopStatus {
            since: now,
            succeeded: true,
            last_error: None,
        });
        status.since = now;
        status.succeeded = true;
        status.last_error = None;
    }

    /// A pass of `identity` failed with `error`.
    pub fn failed(&self, identity: &str, error: String, now: Instant) {
        let mut loops = self.loops.lock().expect("poll status lock");
        loops
            .entry(identity.into())
            .or_insert(LoopStatus {
                since: now,
                succeeded: false,
                last_error: None,
            })
            .last_error = Some(error);
    }

    /// `Err` naming every loop without a successful pass for `stale_after`.
    pub fn check(&self, now: Instant, stale_after: Duration) -> Result<(), String> {
        let loops = self.loops.lock().expect("poll status lock");
        let late: Vec<String> = loops
            .iter()
            .filter_map(|(identity, status)| {
                late(status, now, stale_after).map(|why| format!("{identity}: {why}"))
            })
            .collect();
        if late.is_empty() {
            Ok(())
        } else {
            Err(late.join("; "))
        }
    }
}

/// Why a loop is late, if it is.
fn late(status: &LoopStatus, now: Instant, stale_after: Duration) -> Option<String> {
    let quiet = now.saturating_duration_since(status.since);
    if quiet <= stale_after {
        return None;
    }
    let what = if status.succeeded {
        format!("no successful poll pass for {}s", quiet.as_secs())
    } else {
        format!(
            "no successful poll pass since the start {}s ago",
            quiet.as_secs()
        )
    };
    Some(match &status.last_error {
        Some(error) => format!("{what} (last error: {error})"),
        None => what,
    })
}

/// What the service's checks read.
pub struct Watched {
    pub nats: async_nats::Client,
    pub auth: Arc<AuthStatus>,
    pub polls: Arc<PollStatus>,
    /// A poll loop is unhealthy after this long without a successful pass.
    pub stale_after: Duration,
}

/// Refreshes `health` every [`REFRESH`] until `shutdown`.
pub async fn watch(health: Health, watched: Watched, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        refresh(&health, &watched);
    }
}

/// Sets every check once.
pub fn refresh(health: &Health, watched: &Watched) {
    match watched.nats.connection_state() {
        State::Connected => health.ok("nats"),
        state => health.failing("nats", format!("NATS connection {state}")),
    }
    health.set("github_auth", watched.auth.check());
    health.set(
        "poll",
        watched.polls.check(Instant::now(), watched.stale_after),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(60);

    #[test]
    fn a_loop_is_late_only_after_the_stale_time_and_says_why() {
        let start = Instant::now();
        let status = PollStatus::default();
        status.started("token", start);
        assert_eq!(status.check(start + STALE, STALE), Ok(()));
        status.failed("token", "HTTP 502".into(), start + STALE);
        let err = status.check(start + STALE * 2, STALE).unwrap_err();
        assert!(err.contains("since the start"), "{err}");
        assert!(err.contains("HTTP 502"), "{err}");
        status.succeeded("token", start + STALE * 2);
        assert_eq!(status.check(start + STALE * 3, STALE), Ok(()));
        let err = status.check(start + STALE * 4, STALE).unwrap_err();
        assert!(
            err.starts_with("token: no successful poll pass for 120s"),
            "{err}"
        );
    }
}
