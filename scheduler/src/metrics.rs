//! The scheduler's Prometheus metrics (`gha_scheduler_` prefix).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Label {
    kind: String,
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
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;
