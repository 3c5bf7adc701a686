//! Gauges over the engine's live records, computed at each scrape: how many
//! jobs each pool holds in each phase, how long the oldest job of a pool has
//! waited for a runner, and how long the oldest record has sat in its phase.
//! The records are the engine's in-memory view, complete while one
//! scheduler runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use gha_proto::v1::{JobPhase, JobState};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::engine::{Engine, Placer, candidate, now_ms};
use crate::github::GitHubApi;
use crate::slurm::BatchSystem;

/// The phases a live record can be in, as the `phase` label spells them.
const LIVE_PHASES: [(JobPhase, &str); 4] = [
    (JobPhase::Queued, "queued"),
    (JobPhase::Submitted, "submitted"),
    (JobPhase::Launching, "launching"),
    (JobPhase::Running, "running"),
];

fn phase_label(phase: JobPhase) -> Option<&'static str> {
    LIVE_PHASES
        .iter()
        .find(|(live, _)| *live == phase)
        .map(|(_, label)| *label)
}

/// What the gauges say at one instant.
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    /// Records per (pool, phase).
    pub jobs: BTreeMap<(String, &'static str), i64>,
    /// Per pool: seconds since GitHub queued the oldest job no runner has
    /// taken yet (queued, submitted or launching); 0 when none waits.
    pub oldest_waiting: BTreeMap<String, f64>,
    /// Per (pool, phase): seconds the oldest record has been in the phase.
    pub oldest_in_phase: BTreeMap<(String, &'static str), f64>,
}

/// Summarises `records` at `now_ms`; every pool of `pools` gets every
/// series, so a quiet pool reads 0 rather than nothing.
pub fn summarize(pools: &[String], records: &[JobState], now_ms: i64) -> Summary {
    let mut summary = Summary::default();
    let seconds_since = |ms: i64| (now_ms - ms).max(0) as f64 / 1000.0;
    let touch = |summary: &mut Summary, pool: &str| {
        if summary.oldest_waiting.contains_key(pool) {
            return;
        }
        summary.oldest_waiting.insert(pool.to_owned(), 0.0);
        for (_, phase) in LIVE_PHASES {
            summary.jobs.insert((pool.to_owned(), phase), 0);
            summary
                .oldest_in_phase
                .insert((pool.to_owned(), phase), 0.0);
        }
    };
    for pool in pools {
        touch(&mut summary, pool);
    }
    for state in records {
        let Some(phase) = phase_label(state.phase()) else {
            continue;
        };
        let waiting = candidate(state);
        touch(&mut summary, &waiting.pool);
        let key = (waiting.pool.clone(), phase);
        *summary.jobs.entry(key.clone()).or_default() += 1;
        let in_phase = seconds_since(state.phase_since_unix_ms);
        let oldest = summary.oldest_in_phase.entry(key).or_default();
        *oldest = oldest.max(in_phase);
        if state.phase() != JobPhase::Running {
            let waited = seconds_since(waiting.queued_at_unix_ms);
            let oldest = summary.oldest_waiting.entry(waiting.pool).or_default();
            *oldest = oldest.max(waited);
        }
    }
    summary
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolPhase {
    pool: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolOnly {
    pool: String,
}

type Records = Box<dyn Fn() -> Vec<JobState> + Send + Sync>;

/// The collector: reads the records at each scrape.
pub struct LiveJobs {
    pools: Vec<String>,
    records: Records,
}

impl std::fmt::Debug for LiveJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveJobs")
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

impl LiveJobs {
    /// Registers the gauges over `engine`'s records in `registry` (the
    /// `gha_scheduler` one); `pools` are the policy's pools.
    pub fn register<B: BatchSystem, G: GitHubApi, P: Placer>(
        registry: &mut Registry,
        pools: Vec<String>,
        engine: &Arc<Engine<B, G, P>>,
    ) {
        let engine: Weak<Engine<B, G, P>> = Arc::downgrade(engine);
        let records: Records = Box::new(move || {
            engine
                .upgrade()
                .map(|engine| engine.live_records())
                .unwrap_or_default()
        });
        registry.register_collector(Box::new(Self { pools, records }));
    }
}

impl Collector for LiveJobs {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let summary = summarize(&self.pools, &(self.records)(), now_ms());
        let jobs = Family::<PoolPhase, Gauge>::default();
        for ((pool, phase), count) in &summary.jobs {
            jobs.get_or_create(&pool_phase(pool, phase)).set(*count);
        }
        let waiting = Family::<PoolOnly, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (pool, seconds) in &summary.oldest_waiting {
            waiting
                .get_or_create(&PoolOnly { pool: pool.clone() })
                .set(*seconds);
        }
        let in_phase = Family::<PoolPhase, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for ((pool, phase), seconds) in &summary.oldest_in_phase {
            in_phase
                .get_or_create(&pool_phase(pool, phase))
                .set(*seconds);
        }
        jobs.encode(encoder.encode_descriptor(
            "jobs",
            "Live job records, by pool and phase",
            None,
            jobs.metric_type(),
        )?)?;
        waiting.encode(encoder.encode_descriptor(
            "oldest_waiting_seconds",
            "Seconds since GitHub queued the oldest job of the pool that no runner has taken",
            None,
            waiting.metric_type(),
        )?)?;
        in_phase.encode(encoder.encode_descriptor(
            "oldest_in_phase_seconds",
            "Seconds the oldest record of the pool has been in its phase",
            None,
            in_phase.metric_type(),
        )?)
    }
}

fn pool_phase(pool: &str, phase: &str) -> PoolPhase {
    PoolPhase {
        pool: pool.to_owned(),
        phase: phase.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use gha_proto::v1::{Placement, QueuedJob};

    use super::*;
    use crate::record;

    fn record_in(pool: &str, created_ms: i64, phase: JobPhase, since_ms: i64) -> JobState {
        let job = QueuedJob {
            job_id: created_ms,
            created_at_unix_ms: created_ms,
            observed_at_unix_ms: created_ms + 500,
            ..QueuedJob::default()
        };
        let mut state = record::queued(job, created_ms);
        state.placement = Some(Placement {
            pool: pool.into(),
            ..Placement::default()
        });
        state.phase = phase as i32;
        state.phase_since_unix_ms = since_ms;
        state
    }

    #[test]
    fn a_quiet_pool_reads_zero_in_every_series() {
        let summary = summarize(&["cpu".into()], &[], 10_000);
        assert_eq!(summary.oldest_waiting["cpu"], 0.0);
        for (_, phase) in LIVE_PHASES {
            assert_eq!(summary.jobs[&("cpu".to_owned(), phase)], 0);
            assert_eq!(summary.oldest_in_phase[&("cpu".to_owned(), phase)], 0.0);
        }
    }

    #[test]
    fn waiting_counts_from_github_queueing_and_stops_once_running() {
        let now = 100_000;
        let records = [
            // Queued at GitHub 90 s ago, resubmitted 10 s ago.
            record_in("cpu", now - 90_000, JobPhase::Queued, now - 10_000),
            record_in("cpu", now - 30_000, JobPhase::Launching, now - 5_000),
            // Running: waits no more, however old.
            record_in("cpu", now - 500_000, JobPhase::Running, now - 400_000),
            record_in("gpu", now - 20_000, JobPhase::Submitted, now - 19_000),
        ];
        let summary = summarize(&["cpu".into(), "gpu".into()], &records, now);
        assert_eq!(summary.oldest_waiting["cpu"], 90.0);
        assert_eq!(summary.oldest_waiting["gpu"], 20.0);
        assert_eq!(summary.jobs[&("cpu".to_owned(), "queued")], 1);
        assert_eq!(summary.jobs[&("cpu".to_owned(), "launching")], 1);
        assert_eq!(summary.jobs[&("cpu".to_owned(), "running")], 1);
        assert_eq!(summary.jobs[&("gpu".to_owned(), "submitted")], 1);
        assert_eq!(summary.oldest_in_phase[&("cpu".to_owned(), "queued")], 10.0);
        assert_eq!(
            summary.oldest_in_phase[&("cpu".to_owned(), "running")],
            400.0
        );
    }

    #[test]
    fn terminal_records_and_unknown_pools_are_handled() {
        let now = 10_000;
        let done = record_in("cpu", 0, JobPhase::Done, 0);
        let elsewhere = record_in("old-pool", now - 1_000, JobPhase::Queued, now - 1_000);
        let summary = summarize(&["cpu".into()], &[done, elsewhere], now);
        assert_eq!(summary.jobs[&("cpu".to_owned(), "queued")], 0);
        assert_eq!(summary.jobs[&("old-pool".to_owned(), "queued")], 1);
        assert_eq!(summary.oldest_waiting["old-pool"], 1.0);
    }
}
