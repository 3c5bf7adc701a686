//! The unpacker's metrics, prefix `gha_unpacker`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Every metric the unpacker exports.
#[derive(Clone)]
pub struct UnpackerMetrics {
    /// Requests answered, by outcome (`published`, `already_present`,
    /// `failed_<kind>`), whatever their transport.
    pub requests: Family<OutcomeLabels, Counter>,
    /// Publisher runs (unpacks), by outcome: concurrent requests for one
    /// image share one.
    pub unpacks: Family<OutcomeLabels, Counter>,
    /// Compressed bytes read from sources.
    pub bytes_downloaded: Counter,
    /// Bytes of file content written.
    pub bytes_written: Counter,
    pub files_written: Counter,
    /// Seconds from the start of a publisher run to its end.
    pub unpack_seconds: Histogram,
    /// Images the records hold.
    pub published_images: Gauge,
    /// Images removed, by reason (`expired`, `deleted`).
    pub removed: Family<ReasonLabels, Counter>,
}

impl Default for UnpackerMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            unpacks: Family::default(),
            bytes_downloaded: Counter::default(),
            bytes_written: Counter::default(),
            files_written: Counter::default(),
            // 0.1 s .. ~7 min.
            unpack_seconds: Histogram::new(exponential_buckets(0.1, 2.0, 13)),
            published_images: Gauge::default(),
            removed: Family::default(),
        }
    }
}

impl UnpackerMetrics {
    /// Registers the metrics in `registry` (created with prefix
    /// `gha_unpacker`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Unpack requests answered, by outcome",
            self.requests.clone(),
        );
        registry.register(
            "unpacks",
            "Publisher runs (shared by concurrent requests for one image), by outcome",
            self.unpacks.clone(),
        );
        registry.register(
            "downloaded_bytes",
            "Compressed bytes read from image sources",
            self.bytes_downloaded.clone(),
        );
        registry.register(
            "written_bytes",
            "Bytes of file content written",
            self.bytes_written.clone(),
        );
        registry.register("written_files", "Files written", self.files_written.clone());
        registry.register(
            "unpack_duration_seconds",
            "Duration of publisher runs",
            self.unpack_seconds.clone(),
        );
        registry.register(
            "published_images",
            "Images currently published",
            self.published_images.clone(),
        );
        registry.register(
            "removed_images",
            "Images removed, by reason",
            self.removed.clone(),
        );
        self.prime();
    }

    /// Creates the usual series at 0, so every family is on `/metrics`
    /// from the start (a family without series is not exported) and a
    /// rate over it has a baseline.
    fn prime(&self) {
        for outcome in ["published", "already_present"] {
            let labels = OutcomeLabels {
                outcome: outcome.into(),
            };
            self.requests.get_or_create(&labels).inc_by(0);
            self.unpacks.get_or_create(&labels).inc_by(0);
        }
        for reason in ["expired", "deleted"] {
            self.removed
                .get_or_create(&ReasonLabels {
                    reason: reason.into(),
                })
                .inc_by(0);
        }
    }

    pub fn request(&self, outcome: &str) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn unpack(&self, outcome: &str) {
        self.unpacks
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn removal(&self, reason: &str, count: usize) {
        self.removed
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc_by(count as u64);
    }
}
