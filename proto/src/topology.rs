//! Every JetStream stream, consumer and KV bucket of slurm-actions.
//!
//! [`crate::Contract::ensure_topology`] creates them or brings an existing
//! one's configuration in line, so any service may start first.

use std::time::Duration;

use async_nats::jetstream::{consumer, kv, stream};

use crate::subjects;

/// Stream of demand: `QueuedJob` and `JobStatusChange`, in publication order,
/// so the scheduler sees a job's status change after the job.
pub const JOBS_STREAM: &str = "GHA_JOBS";

/// Runner lifecycle events from the launchers.
pub const RUNNER_EVENTS_STREAM: &str = "GHA_RUNNER_EVENTS";

/// Unpack requests, consumed once each by the unpacker.
pub const UNPACK_STREAM: &str = "GHA_UNPACK";

/// Messages consumers gave up on, with the reason in a header.
pub const DEAD_LETTER_STREAM: &str = "GHA_DEAD_LETTER";

/// The scheduler's job state, key = GitHub job id.
pub const JOBS_BUCKET: &str = "gha_jobs";

/// Leases of the replicated services, key = lease name.
pub const LEASES_BUCKET: &str = "gha_leases";

/// Durable consumer of the scheduler on [`JOBS_STREAM`].
pub const SCHEDULER_JOBS_CONSUMER: &str = "gha-scheduler";

/// Durable consumer of the scheduler on [`RUNNER_EVENTS_STREAM`].
pub const SCHEDULER_RUNNER_EVENTS_CONSUMER: &str = "gha-scheduler-runner-events";

/// Durable consumer of the unpacker on [`UNPACK_STREAM`].
pub const UNPACKER_CONSUMER: &str = "gha-unpacker";

/// How long `Nats-Msg-Id` deduplication remembers an id on [`JOBS_STREAM`].
/// GitHub cancels a job queued for 24 h, so a poll that sees the same queued
/// job again within a day publishes nothing new.
pub const JOBS_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

const DAY: Duration = Duration::from_secs(24 * 3600);

/// [`JOBS_STREAM`]: kept a week for operators to inspect; limits retention so
/// more than one consumer (the scheduler, a person's ad-hoc one) can read it.
pub fn jobs_stream() -> stream::Config {
    stream::Config {
        name: JOBS_STREAM.into(),
        description: Some(
            "Queued GitHub jobs and their status changes (gha-poller -> gha-scheduler)".into(),
        ),
        subjects: vec![subjects::JOBS_ALL.into()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: 7 * DAY,
        duplicate_window: JOBS_DEDUP_WINDOW,
        ..Default::default()
    }
}

/// [`RUNNER_EVENTS_STREAM`]: a day of launcher events.
pub fn runner_events_stream() -> stream::Config {
    stream::Config {
        name: RUNNER_EVENTS_STREAM.into(),
        description: Some("Runner lifecycle events (gha-runner-launcher -> gha-scheduler)".into()),
        subjects: vec![subjects::RUNNER_EVENTS_ALL.into()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: DAY,
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// [`UNPACK_STREAM`]: a work queue; the unpacker is its one consumer.
pub fn unpack_stream() -> stream::Config {
    stream::Config {
        name: UNPACK_STREAM.into(),
        description: Some("Image unpack requests (CI workflows -> gha-unpacker)".into()),
        subjects: vec![subjects::UNPACK_REQUESTS.into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_age: DAY,
        duplicate_window: Duration::from_secs(3600),
        ..Default::default()
    }
}

/// [`DEAD_LETTER_STREAM`]: kept a month; nothing consumes it but people.
pub fn dead_letter_stream() -> stream::Config {
    stream::Config {
        name: DEAD_LETTER_STREAM.into(),
        description: Some("Messages a consumer gave up on; see the Gha-Dead-Reason header".into()),
        subjects: vec![subjects::DEAD_LETTERS_ALL.into()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: 30 * DAY,
        ..Default::default()
    }
}

/// How the streams and buckets are laid out on the NATS servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Copies JetStream keeps of every stream and bucket: 1 on a single
    /// server, 3 on a three-node cluster (a node can be lost), at most 5.
    pub replicas: usize,
}

impl Default for Layout {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

impl Layout {
    /// A layout with `replicas` copies; JetStream allows 1 to 5.
    pub fn replicated(replicas: usize) -> Result<Self, String> {
        if (1..=5).contains(&replicas) {
            Ok(Self { replicas })
        } else {
            Err(format!("replicas must be 1 to 5, got {replicas}"))
        }
    }
}

/// Every stream, in the order they are created, on a single server.
pub fn streams() -> Vec<stream::Config> {
    streams_in(Layout::default())
}

/// Every stream, in the order they are created, laid out as `layout` says.
/// Consumers inherit their stream's replicas.
pub fn streams_in(layout: Layout) -> Vec<stream::Config> {
    [
        jobs_stream(),
        runner_events_stream(),
        unpack_stream(),
        dead_letter_stream(),
    ]
    .into_iter()
    .map(|config| stream::Config {
        num_replicas: layout.replicas,
        ..config
    })
    .collect()
}

/// Times a message is delivered before a consumer must dead-letter it.
pub const MAX_DELIVER: i64 = 10;

/// A durable pull consumer with explicit acks.
///
/// `ack_wait` is per message and starts at delivery: consumers fetch small
/// batches and report progress on long work.
pub fn durable_pull(name: &str, description: &str, ack_wait: Duration) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(name.into()),
        description: Some(description.into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_deliver: MAX_DELIVER,
        max_ack_pending: 1000,
        deliver_policy: consumer::DeliverPolicy::All,
        ..Default::default()
    }
}

/// The scheduler's consumer of [`JOBS_STREAM`].
pub fn scheduler_jobs_consumer() -> consumer::pull::Config {
    durable_pull(
        SCHEDULER_JOBS_CONSUMER,
        "gha-scheduler: demand and its withdrawal",
        // Recording demand is one KV write (submission is decoupled from
        // the message), so a short wait bounds how long a crashed
        // scheduler's unacknowledged messages wait for redelivery.
        Duration::from_secs(10),
    )
}

/// The scheduler's consumer of [`RUNNER_EVENTS_STREAM`].
pub fn scheduler_runner_events_consumer() -> consumer::pull::Config {
    durable_pull(
        SCHEDULER_RUNNER_EVENTS_CONSUMER,
        "gha-scheduler: runner lifecycle",
        Duration::from_secs(30),
    )
}

/// The unpacker's consumer of [`UNPACK_STREAM`]: unpacking takes minutes,
/// and the unpacker reports progress to extend the deadline.
pub fn unpacker_consumer() -> consumer::pull::Config {
    durable_pull(
        UNPACKER_CONSUMER,
        "gha-unpacker: unpack requests",
        Duration::from_secs(120),
    )
}

/// [`JOBS_BUCKET`]: job state, kept two weeks after the last write, with
/// enough history for a job's whole life (queued, submitted, launching,
/// minted, running, done: about eight writes, more with a resubmission):
/// `gha-ctl job` and `gha-ctl trace` read each phase's time from it.
pub fn jobs_bucket() -> kv::Config {
    kv::Config {
        bucket: JOBS_BUCKET.into(),
        description: "gha-scheduler job state; key = GitHub job id; JobState protobuf".into(),
        history: 16,
        max_age: 14 * DAY,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// [`LEASES_BUCKET`]: one small value per lease; a little history shows
/// who held it last.
pub fn leases_bucket() -> kv::Config {
    kv::Config {
        bucket: LEASES_BUCKET.into(),
        description: "Leases of replicated services; key = lease name; Lease protobuf".into(),
        history: 5,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Every KV bucket, on a single server.
pub fn buckets() -> Vec<kv::Config> {
    buckets_in(Layout::default())
}

/// Every KV bucket, laid out as `layout` says.
pub fn buckets_in(layout: Layout) -> Vec<kv::Config> {
    [jobs_bucket(), leases_bucket()]
        .into_iter()
        .map(|config| kv::Config {
            num_replicas: layout.replicas,
            ..config
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subject may be captured by one stream only: each stream owns a
    /// distinct second token (`gha.jobs`, `gha.runner`, ...).
    #[test]
    fn each_stream_owns_its_own_subject_prefix() {
        let mut prefixes: Vec<String> = streams()
            .iter()
            .flat_map(|stream| stream.subjects.clone())
            .map(|subject| subject.split('.').take(2).collect::<Vec<_>>().join("."))
            .collect();
        let count = prefixes.len();
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), count, "{prefixes:?}");
        assert!(!prefixes.iter().any(|p| p.contains('*') || p.contains('>')));
    }

    #[test]
    fn a_layout_sets_the_replicas_of_every_stream_and_bucket() {
        let layout = Layout::replicated(3).unwrap();
        assert!(streams_in(layout).iter().all(|s| s.num_replicas == 3));
        assert!(buckets_in(layout).iter().all(|b| b.num_replicas == 3));
        assert!(streams().iter().all(|s| s.num_replicas == 1));
        assert!(Layout::replicated(0).is_err());
        assert!(Layout::replicated(6).is_err());
    }

    #[test]
    fn dedup_window_fits_in_the_jobs_stream_age() {
        let jobs = jobs_stream();
        assert!(jobs.duplicate_window <= jobs.max_age);
    }
}
