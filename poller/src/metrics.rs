//! The poller's metrics, prefix `gha_poller`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    /// `webhook` or `poll`.
    pub source: String,
    /// `queued` or `status`.
    pub kind: String,
    /// Whether JetStream had the message already (`Nats-Msg-Id`).
    pub duplicate: String,
}

/// Every metric the poller exports.
#[derive(Clone, Default)]
pub struct PollerMetrics {
    /// Webhook deliveries by outcome (`published`, `bad_signature_*`,
    /// `ignored_event`, `refused`, `duplicate_delivery`, ...).
    pub deliveries: Family<OutcomeLabels, Counter>,
    /// Jobs the policy refused, by reason.
    pub refused: Family<ReasonLabels, Counter>,
    /// Messages published to JetStream.
    pub published: Family<PublishLabels, Counter>,
    /// Poll passes by outcome (`ok`, or the error's label).
    pub passes: Family<OutcomeLabels, Counter>,
    /// GitHub requests sent by the poll, and how many were answered 304.
    pub requests: Counter,
    pub not_modified: Counter,
    /// The token's remaining primary budget, as GitHub last reported it.
    pub rate_limit_remaining: Gauge,
    /// Pages the poll's ETag cache holds (bounded to the runs of the last
    /// pass of each repository).
    pub etag_cache_entries: Gauge,
}

impl PollerMetrics {
    /// Registers the metrics in `registry` (created with prefix
    /// `gha_poller`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries received, by outcome",
            self.deliveries.clone(),
        );
        registry.register(
            "jobs_refused",
            "Jobs not published because the policy refused them, by reason",
            self.refused.clone(),
        );
        registry.register(
            "messages_published",
            "Messages published to JetStream",
            self.published.clone(),
        );
        registry.register(
            "poll_passes",
            "Poll passes, by outcome",
            self.passes.clone(),
        );
        registry.register(
            "github_requests",
            "GitHub requests sent by the poll",
            self.requests.clone(),
        );
        registry.register(
            "github_not_modified",
            "GitHub requests answered 304 (free of rate limit)",
            self.not_modified.clone(),
        );
        registry.register(
            "rate_limit_remaining",
            "Remaining primary rate limit of the token, as last reported",
            self.rate_limit_remaining.clone(),
        );
        registry.register(
            "etag_cache_entries",
            "Pages held by the poll's ETag cache",
            self.etag_cache_entries.clone(),
        );
        self.prime();
    }

    /// Creates the usual series at 0, so every family is on `/metrics`
    /// from the start (a family without series is not exported) and a
    /// rate over it has a baseline.
    fn prime(&self) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: "published".into(),
            })
            .inc_by(0);
        for reason in ["missing_marker", "label_not_allowed", "fork_pull_request"] {
            self.refused
                .get_or_create(&ReasonLabels {
                    reason: reason.into(),
                })
                .inc_by(0);
        }
        for source in ["webhook", "poll"] {
            for kind in ["queued", "status"] {
                self.published
                    .get_or_create(&PublishLabels {
                        source: source.into(),
                        kind: kind.into(),
                        duplicate: false.to_string(),
                    })
                    .inc_by(0);
            }
        }
        self.passes
            .get_or_create(&OutcomeLabels {
                outcome: "ok".into(),
            })
            .inc_by(0);
    }

    pub fn delivery(&self, outcome: &str) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn pass(&self, outcome: &str) {
        self.passes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn refusal(&self, reason: &str) {
        self.refused
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn publication(&self, source: &str, kind: &str, duplicate: bool) {
        self.published
            .get_or_create(&PublishLabels {
                source: source.into(),
                kind: kind.into(),
                duplicate: duplicate.to_string(),
            })
            .inc();
    }
}
