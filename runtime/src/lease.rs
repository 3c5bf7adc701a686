//! Leases in a NATS KV bucket: the work only one replica of a service may do
//! at a time (the scheduler's reconcile pass, the poller's poll).
//!
//! A lease is one key of `gha_leases` whose value ([`Lease`]) names the
//! holder, a fencing term and when the holder last renewed it. Every change
//! is a compare-and-set on the key's revision, so two replicas can never
//! both take it. Time is judged two ways, deliberately:
//!
//! - **Taking** a lease needs it to have lapsed by the taker's wall clock:
//!   `renewed_at + ttl + skew` is past. `skew` covers clocks that disagree.
//! - **Acting** under a lease needs the holder's own *monotonic* clock to
//!   say the last renewal it sent is younger than `ttl - skew`
//!   ([`LeaseHandle::is_held`]). A holder paused for longer than that (a
//!   SIGSTOP, a long GC, a frozen VM) stops acting the moment it resumes,
//!   before it has even learnt that someone else took over.
//!
//! Between the two margins a lease is never acted on by two replicas at
//! once, as long as the clocks disagree by less than `skew`. Every write of
//! the holder carries its term: a caller that must fence its own writes can
//! compare the term it acted under ([`LeaseHandle::term`]).
//!
//! On shutdown the holder writes the lease back lapsed, so a rolling restart
//! hands it over at once instead of after a TTL.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gha_proto::v1::Lease;
use gha_proto::{ContractError, TypedKv, Versioned};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How a replica keeps one lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The key, e.g. `scheduler-reconcile`.
    pub name: String,
    /// This replica, unique per process start ([`holder_id`]).
    pub holder: String,
    /// How long a lease lives after a renewal.
    pub ttl: Duration,
    /// The clock disagreement tolerated between replicas; also the margin
    /// a holder keeps before its lease lapses.
    pub skew: Duration,
}

impl LeaseConfig {
    /// A lease of `ttl` with a skew margin of a tenth of it (at most 1 s).
    pub fn new(name: &str, holder: &str, ttl: Duration) -> Self {
        Self {
            name: name.into(),
            holder: holder.into(),
            ttl,
            skew: (ttl / 10).min(Duration::from_secs(1)),
        }
    }

    /// How often a holder renews, and a follower looks again.
    pub fn period(&self) -> Duration {
        self.ttl / 4
    }
}

/// A holder id unique to this process start: `<service>@<host>/<pid>/<rand>`.
pub fn holder_id(service: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{service}@{host}/{}/{nanos:08x}", std::process::id())
}

/// Milliseconds since the Unix epoch, by this machine's clock.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// What a replica should do next about a lease, given what is stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nobody ever held it: create it.
    Create(Lease),
    /// Ours: renew it at `revision`.
    Renew { lease: Lease, revision: u64 },
    /// Someone else's, lapsed: take it over at `revision` (a new term).
    Take { lease: Lease, revision: u64 },
    /// Someone else's and live: look again later.
    Wait { holder: String },
}

/// Decides the next step from the stored lease. Pure: `now_ms` is the wall
/// clock of the replica deciding.
pub fn next_step(current: Option<&Versioned<Lease>>, config: &LeaseConfig, now_ms: i64) -> Step {
    let fresh = |term: u64| Lease {
        holder: config.holder.clone(),
        term,
        acquired_at_unix_ms: now_ms,
        renewed_at_unix_ms: now_ms,
        ttl_ms: config.ttl.as_millis() as u32,
    };
    let Some(current) = current else {
        return Step::Create(fresh(1));
    };
    let lease = &current.value;
    if lease.holder == config.holder {
        return Step::Renew {
            lease: Lease {
                renewed_at_unix_ms: now_ms,
                ttl_ms: config.ttl.as_millis() as u32,
                ..lease.clone()
            },
            revision: current.revision,
        };
    }
    if lapsed(lease, config.skew, now_ms) {
        return Step::Take {
            lease: fresh(lease.term + 1),
            revision: current.revision,
        };
    }
    Step::Wait {
        holder: lease.holder.clone(),
    }
}

/// Whether `lease` has lapsed by a clock reading `now_ms`, allowing `skew`.
pub fn lapsed(lease: &Lease, skew: Duration, now_ms: i64) -> bool {
    let lapses_at = lease.renewed_at_unix_ms + i64::from(lease.ttl_ms) + skew.as_millis() as i64;
    lease.ttl_ms == 0 || now_ms >= lapses_at
}

/// What this replica holds, as of its last successful write.
#[derive(Debug, Clone, Copy)]
struct Holding {
    term: u64,
    /// The monotonic instant after which this replica must stop acting.
    act_until: Instant,
}

/// The lease as the rest of the service sees it: cheap to clone and ask.
#[derive(Clone)]
pub struct LeaseHandle {
    holding: Arc<Mutex<Option<Holding>>>,
    changes: watch::Sender<bool>,
    metrics: LeaseMetrics,
}

impl LeaseHandle {
    /// A handle whose lease is not held yet; give it to [`keep`].
    pub fn new(metrics: LeaseMetrics) -> Self {
        Self {
            holding: Arc::new(Mutex::new(None)),
            changes: watch::channel(false).0,
            metrics,
        }
    }

    /// Whether this replica may act under the lease right now.
    pub fn is_held(&self) -> bool {
        self.term().is_some()
    }

    /// The term this replica holds the lease under, while it may act.
    pub fn term(&self) -> Option<u64> {
        let holding = *self.holding.lock().expect("lease lock");
        holding
            .filter(|holding| Instant::now() < holding.act_until)
            .map(|holding| holding.term)
    }

    /// Waits until this replica holds the lease.
    pub async fn held(&self) {
        let mut changes = self.changes.subscribe();
        loop {
            if self.is_held() {
                return;
            }
            // A lapse by time alone sends no change: poll within the period.
            let _ = tokio::time::timeout(Duration::from_millis(250), changes.changed()).await;
        }
    }

    fn set(&self, holding: Option<Holding>) {
        let was = self.holding.lock().expect("lease lock").is_some();
        *self.holding.lock().expect("lease lock") = holding;
        let now = holding.is_some();
        self.metrics.held.set(i64::from(now));
        if was != now {
            self.changes.send_replace(now);
        }
    }
}

/// The metrics of one lease, under the service's prefix.
#[derive(Clone, Default)]
pub struct LeaseMetrics {
    held: Gauge,
    taken: Counter,
    lost: Counter,
    vacancy_ms: Gauge,
}

impl LeaseMetrics {
    /// Registers `<prefix>_lease_*` for the lease called `name`.
    pub fn register(&self, registry: &mut Registry, name: &str) {
        let sub = registry.sub_registry_with_label(("lease".into(), name.to_owned().into()));
        sub.register(
            "lease_held",
            "1 while this replica holds the lease and may act under it",
            self.held.clone(),
        );
        sub.register(
            "lease_taken",
            "Times this replica took the lease (created it or took it over)",
            self.taken.clone(),
        );
        sub.register(
            "lease_lost",
            "Times this replica lost the lease it held (renewal refused or lapsed)",
            self.lost.clone(),
        );
        sub.register(
            "lease_vacancy_milliseconds",
            "How long the lease had no live holder before this replica last took it",
            self.vacancy_ms.clone(),
        );
    }
}

/// Keeps `handle`'s lease until `shutdown`: takes it when it is free,
/// renews it while held, gives it back lapsed at the end. A failed round
/// (NATS away) is logged and tried again; it never ends the loop.
pub async fn keep(
    kv: TypedKv<Lease>,
    config: LeaseConfig,
    handle: LeaseHandle,
    shutdown: CancellationToken,
) {
    let mut last_holder: Option<String> = None;
    loop {
        let started = Instant::now();
        match round(&kv, &config, &handle, started).await {
            Ok(Some(holder)) if last_holder.as_deref() != Some(holder.as_str()) => {
                info!(lease = %config.name, %holder, "lease held by another replica");
                last_holder = Some(holder);
            }
            Ok(Some(_)) => {}
            Ok(None) => last_holder = None,
            Err(err) => {
                warn!(lease = %config.name, error = %err, "lease round failed; trying again");
                // Whatever we held lapses by time alone if renewals keep
                // failing: `is_held` turns false at `act_until`.
            }
        }
        let pause = jittered(config.period());
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    release(&kv, &config, &handle).await;
}

/// One look at the lease; returns the other holder when it is not ours.
async fn round(
    kv: &TypedKv<Lease>,
    config: &LeaseConfig,
    handle: &LeaseHandle,
    sent_at: Instant,
) -> Result<Option<String>, ContractError> {
    let current = kv.get(&config.name).await?;
    let now = now_ms();
    let step = next_step(current.as_ref(), config, now);
    let (lease, written) = match step {
        Step::Wait { holder } => {
            if handle.holding.lock().expect("lease lock").is_some() {
                lost(config, handle, &holder);
            }
            return Ok(Some(holder));
        }
        Step::Create(lease) => (lease.clone(), kv.create(&config.name, &lease).await),
        Step::Renew { lease, revision } | Step::Take { lease, revision } => {
            let taking = current
                .as_ref()
                .is_some_and(|current| current.value.holder != config.holder);
            if taking && let Some(previous) = &current {
                let lapsed_at =
                    previous.value.renewed_at_unix_ms + i64::from(previous.value.ttl_ms);
                handle.metrics.vacancy_ms.set((now - lapsed_at).max(0));
            }
            (
                lease.clone(),
                kv.update(&config.name, &lease, revision).await,
            )
        }
    };
    match written {
        Ok(_) => {
            let was_held = handle.holding.lock().expect("lease lock").is_some();
            if !was_held {
                handle.metrics.taken.inc();
                info!(lease = %config.name, term = lease.term, "lease taken");
            }
            handle.set(Some(Holding {
                term: lease.term,
                act_until: sent_at + config.ttl.saturating_sub(config.skew),
            }));
            Ok(None)
        }
        Err(ContractError::AlreadyExists { .. } | ContractError::RevisionMismatch { .. }) => {
            // Someone else wrote first: ours no longer, if it ever was.
            if handle.holding.lock().expect("lease lock").is_some() {
                lost(config, handle, "another replica");
            }
            Ok(Some("another replica".into()))
        }
        Err(err) => Err(err),
    }
}

fn lost(config: &LeaseConfig, handle: &LeaseHandle, to: &str) {
    warn!(lease = %config.name, to, "lease lost");
    handle.metrics.lost.inc();
    handle.set(None);
}

/// Writes the lease back lapsed if it is still ours, so another replica
/// takes it at once.
async fn release(kv: &TypedKv<Lease>, config: &LeaseConfig, handle: &LeaseHandle) {
    if handle.holding.lock().expect("lease lock").take().is_none() {
        return;
    }
    handle.set(None);
    let Ok(Some(current)) = kv.get(&config.name).await else {
        return;
    };
    if current.value.holder != config.holder {
        return;
    }
    let lapsed = Lease {
        ttl_ms: 0,
        ..current.value
    };
    match kv.update(&config.name, &lapsed, current.revision).await {
        Ok(_) => info!(lease = %config.name, "lease released"),
        Err(err) => {
            warn!(lease = %config.name, error = %err, "releasing the lease failed; it lapses by itself")
        }
    }
}

/// `period` less up to a fifth, so replicas do not look in lockstep.
fn jittered(period: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let fifth = period / 5;
    period - fifth.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(holder: &str) -> LeaseConfig {
        LeaseConfig {
            name: "l".into(),
            holder: holder.into(),
            ttl: Duration::from_secs(10),
            skew: Duration::from_secs(1),
        }
    }

    fn stored(holder: &str, term: u64, renewed_at: i64) -> Versioned<Lease> {
        Versioned {
            value: Lease {
                holder: holder.into(),
                term,
                acquired_at_unix_ms: 0,
                renewed_at_unix_ms: renewed_at,
                ttl_ms: 10_000,
            },
            revision: 7,
        }
    }

    #[test]
    fn a_lease_nobody_held_is_created_at_term_one() {
        let Step::Create(lease) = next_step(None, &config("a"), 5) else {
            panic!("create")
        };
        assert_eq!((lease.holder.as_str(), lease.term), ("a", 1));
        assert_eq!(lease.renewed_at_unix_ms, 5);
    }

    #[test]
    fn the_holder_renews_keeping_its_term() {
        let current = stored("a", 3, 1_000);
        let step = next_step(Some(&current), &config("a"), 4_000);
        let Step::Renew { lease, revision } = step else {
            panic!("renew")
        };
        assert_eq!(
            (lease.term, lease.renewed_at_unix_ms, revision),
            (3, 4_000, 7)
        );
    }

    #[test]
    fn a_live_lease_of_another_is_waited_for_until_ttl_and_skew_have_passed() {
        let current = stored("a", 3, 1_000);
        // 1_000 + 10_000 ttl + 1_000 skew = 12_000.
        assert!(matches!(
            next_step(Some(&current), &config("b"), 11_999),
            Step::Wait { .. }
        ));
        let Step::Take { lease, revision } = next_step(Some(&current), &config("b"), 12_000) else {
            panic!("take")
        };
        assert_eq!((lease.holder.as_str(), lease.term, revision), ("b", 4, 7));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut current = stored("a", 3, 1_000);
        current.value.ttl_ms = 0;
        assert!(matches!(
            next_step(Some(&current), &config("b"), 1_001),
            Step::Take { .. }
        ));
    }

    #[test]
    fn a_holder_stops_acting_before_others_may_take_over() {
        // The holder acts until sent_at + ttl - skew (monotonic); others
        // take over at renewed_at + ttl + skew (wall): 2 * skew apart.
        let handle = LeaseHandle::new(LeaseMetrics::default());
        handle.set(Some(Holding {
            term: 1,
            act_until: Instant::now() + Duration::from_secs(60),
        }));
        assert_eq!(handle.term(), Some(1));
        handle.set(Some(Holding {
            term: 1,
            act_until: Instant::now() - Duration::from_millis(1),
        }));
        assert!(!handle.is_held(), "a lapsed holding must not be acted on");
    }
}
