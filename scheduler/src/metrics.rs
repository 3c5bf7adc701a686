//! The scheduler's Prometheus metrics (`gha_scheduler_` prefix).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::slurm::{SlurmJob, SlurmState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Label {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabel {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// Seconds from GitHub queueing a job to a runner taking it: ~1 s when a
/// node is free, minutes when the cluster is full.
const QUEUED_TO_RUNNING_BUCKETS: [f64; 13] = [
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

fn queued_to_running_histogram() -> Histogram {
    Histogram::new(QUEUED_TO_RUNNING_BUCKETS)
}

/// The Slurm states `slurm_jobs` reports, always all of them.
const SLURM_STATES: [&str; 15] = [
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "COMPLETED",
    "CANCELLED",
    "FAILED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "OTHER",
];

fn slurm_state_label(state: &SlurmState) -> &'static str {
    match state {
        SlurmState::Pending => "PENDING",
        SlurmState::Configuring => "CONFIGURING",
        SlurmState::Running => "RUNNING",
        SlurmState::Completing => "COMPLETING",
        SlurmState::Suspended => "SUSPENDED",
        SlurmState::Completed => "COMPLETED",
        SlurmState::Cancelled => "CANCELLED",
        SlurmState::Failed => "FAILED",
        SlurmState::Timeout => "TIMEOUT",
        SlurmState::NodeFail => "NODE_FAIL",
        SlurmState::Preempted => "PREEMPTED",
        SlurmState::BootFail => "BOOT_FAIL",
        SlurmState::Deadline => "DEADLINE",
        SlurmState::OutOfMemory => "OUT_OF_MEMORY",
        SlurmState::Other(_) => "OTHER",
    }
}

/// Counters and histograms, cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    submissions: Family<Label, Counter>,
    submit_seconds: Histogram,
    unplaceable: Family<Label, Counter>,
    reconcile: Family<Label, Counter>,
    jit: Family<Label, Counter>,
    duplicates: Counter,
    errors: Family<Label, Counter>,
    queued_to_running: Family<PoolLabel, Histogram, fn() -> Histogram>,
    reconcile_passes: Family<OutcomeLabel, Counter>,
    slurm_jobs: Family<StateLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            submissions: Family::default(),
            submit_seconds: Histogram::new([
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            unplaceable: Family::default(),
            reconcile: Family::default(),
            jit: Family::default(),
            duplicates: Counter::default(),
            errors: Family::default(),
            queued_to_running: Family::new_with_constructor(queued_to_running_histogram),
            reconcile_passes: Family::default(),
            slurm_jobs: Family::default(),
        }
    }
}

fn label(kind: &str) -> Label {
    Label {
        kind: kind.to_owned(),
    }
}

impl Metrics {
    /// Registers every metric in `registry` under `gha_scheduler_`.
    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("gha_scheduler");
        registry.register(
            "submissions",
            "sbatch outcomes (submitted, adopted, rejected, transient)",
            self.submissions.clone(),
        );
        registry.register(
            "submit_duration_seconds",
            "Time of one sbatch call",
            self.submit_seconds.clone(),
        );
        registry.register(
            "unplaceable_jobs",
            "Jobs no pool takes, by reason",
            self.unplaceable.clone(),
        );
        registry.register(
            "reconcile_actions",
            "Reconcile actions, by kind",
            self.reconcile.clone(),
        );
        registry.register(
            "jit_configs",
            "JIT config requests, by outcome",
            self.jit.clone(),
        );
        registry.register(
            "duplicate_demand",
            "QueuedJob deliveries for jobs already recorded",
            self.duplicates.clone(),
        );
        registry.register("errors", "Errors, by kind", self.errors.clone());
        registry.register(
            "queued_to_running_seconds",
            "Time from GitHub queueing a job to a runner taking it, by pool",
            self.queued_to_running.clone(),
        );
        registry.register(
            "reconcile_passes",
            "Reconcile passes, by outcome (ok or the error's kind)",
            self.reconcile_passes.clone(),
        );
        registry.register(
            "slurm_jobs",
            "Slurm jobs of ours by Slurm state, as the last reconcile pass saw them",
            self.slurm_jobs.clone(),
        );
        self.prime();
    }

    /// Creates the usual series at 0, so every family is on `/metrics`
    /// from the start (a family without series is not exported) and a
    /// rate over it has a baseline.
    fn prime(&self) {
        for outcome in ["submitted", "adopted", "rejected", "transient"] {
            self.submissions.get_or_create(&label(outcome)).inc_by(0);
        }
        for reason in [
            "no_pool",
            "out_of_bounds",
            "repo_not_allowed",
            "conflicting_sizes",
        ] {
            self.unplaceable.get_or_create(&label(reason)).inc_by(0);
        }
        for kind in [
            "withdrawn",
            "withdrawn_before_submit",
            "resubmitted",
            "failed",
            "done",
            "adopted",
            "stray_cancelled",
            "runner_deleted",
        ] {
            self.reconcile.get_or_create(&label(kind)).inc_by(0);
        }
        self.jit
            .get_or_create(&label("jit_config_refusal_unspecified"))
            .inc_by(0);
        self.errors.get_or_create(&label("transient")).inc_by(0);
        self.reconcile_passes
            .get_or_create(&OutcomeLabel {
                outcome: "ok".into(),
            })
            .inc_by(0);
        for state in SLURM_STATES {
            self.slurm_jobs
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .inc_by(0);
        }
    }

    pub fn submission(&self, outcome: &str) {
        self.submissions.get_or_create(&label(outcome)).inc();
    }

    pub fn submit_seconds(&self, seconds: f64) {
        self.submit_seconds.observe(seconds);
    }

    pub fn unplaceable(&self, reason: &str) {
        self.unplaceable.get_or_create(&label(reason)).inc();
    }

    pub fn reconcile_action(&self, kind: &str) {
        self.reconcile.get_or_create(&label(kind)).inc();
    }

    pub fn jit(&self, outcome: &str) {
        self.jit.get_or_create(&label(outcome)).inc();
    }

    pub fn duplicate_demand(&self) {
        self.duplicates.inc();
    }

    pub fn error(&self, kind: &str) {
        self.errors.get_or_create(&label(kind)).inc();
    }

    /// Creates the per-pool series, so each pool of the policy is on
    /// `/metrics` before its first job.
    pub fn prime_pools(&self, pools: &[String]) {
        for pool in pools {
            let _ = self
                .queued_to_running
                .get_or_create(&PoolLabel { pool: pool.clone() });
        }
    }

    /// A runner of `pool` took a job `seconds` after GitHub queued it.
    pub fn queued_to_running(&self, pool: &str, seconds: f64) {
        self.queued_to_running
            .get_or_create(&PoolLabel { pool: pool.into() })
            .observe(seconds);
    }

    /// One reconcile pass ended: `ok` or the error's label.
    pub fn reconcile_pass(&self, outcome: &str) {
        self.reconcile_passes
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Our Slurm jobs as one `squeue` listed them: every state is set,
    /// those absent to 0.
    pub fn slurm_jobs(&self, jobs: &[SlurmJob]) {
        for state in SLURM_STATES {
            let count = jobs
                .iter()
                .filter(|job| slurm_state_label(&job.state) == state)
                .count();
            self.slurm_jobs
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(count as i64);
        }
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(metrics: &Metrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    fn job(state: SlurmState) -> SlurmJob {
        SlurmJob {
            id: 1,
            name: "gha-1-1".into(),
            comment: String::new(),
            state,
            reason: String::new(),
            nodes: String::new(),
        }
    }

    #[test]
    fn every_family_is_exported_before_anything_happened() {
        let text = scrape(&Metrics::default());
        for family in [
            "gha_scheduler_submissions",
            "gha_scheduler_unplaceable_jobs",
            "gha_scheduler_reconcile_actions",
            "gha_scheduler_jit_configs",
            "gha_scheduler_errors",
            "gha_scheduler_reconcile_passes",
            "gha_scheduler_slurm_jobs",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}:\n{text}"
            );
        }
    }

    #[test]
    fn slurm_jobs_counts_each_state_and_zeroes_the_rest() {
        let metrics = Metrics::default();
        metrics.slurm_jobs(&[
            job(SlurmState::Pending),
            job(SlurmState::Pending),
            job(SlurmState::Running),
            job(SlurmState::Other("REQUEUED".into())),
        ]);
        metrics.slurm_jobs(&[job(SlurmState::Pending), job(SlurmState::Running)]);
        let text = scrape(&metrics);
        assert!(
            text.contains("gha_scheduler_slurm_jobs{state=\"PENDING\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("gha_scheduler_slurm_jobs{state=\"RUNNING\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("gha_scheduler_slurm_jobs{state=\"OTHER\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("gha_scheduler_slurm_jobs{state=\"NODE_FAIL\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn queued_to_running_is_a_histogram_per_pool() {
        let metrics = Metrics::default();
        metrics.queued_to_running("cpu", 1.5);
        let text = scrape(&metrics);
        assert!(
            text.contains(
                "gha_scheduler_queued_to_running_seconds_bucket{le=\"2.0\",pool=\"cpu\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("gha_scheduler_queued_to_running_seconds_count{pool=\"cpu\"} 1\n"),
            "{text}"
        );
    }
}
