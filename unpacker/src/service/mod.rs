//! The unpack service, free of transports: what the HTTP API, the NATS
//! consumer and the expiry sweep call.
//!
//! A request is first *prepared* (source parsed and opened, manifest
//! resolved: its digest and future path are known) and then *completed*:
//! an image already published gets its TTL renewed; otherwise one task per
//! digest unpacks and publishes it on the blocking pool, bounded by a
//! semaphore, and every concurrent request for that digest waits for the
//! same task (single flight). The task is spawned, so a client that goes
//! away does not cancel an unpack others wait for.

mod answers;
mod error;
pub mod local;
mod removal;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

pub use answers::RequestState;
pub use error::RequestError;

use crate::image::{Digest, Platform};
use crate::metrics::UnpackerMetrics;
use crate::publish::{ImageContent, PublishJob, PublishStatus, Publisher, TagName, tag_target};
use crate::source::{ImageSource, SourceError, SourceRef};
use crate::store::{ImageRecord, Store};
use crate::unpack::{self, ResolvedImage, UnpackOptions};

/// Opens an image source (a transport) for a parsed reference.
pub type Opener =
    Arc<dyn Fn(&SourceRef) -> Result<Box<dyn ImageSource>, SourceError> + Send + Sync>;

/// The transports of this build.
pub fn default_opener() -> Opener {
    Arc::new(crate::source::open_source)
}

/// The transports of this build, `docker://` reached with `registry`.
pub fn opener_with(registry: crate::source::registry::RegistryOptions) -> Opener {
    Arc::new(move |reference| crate::source::open_source_with(reference, &registry))
}

/// What a request gets when it does not say, and where it may read.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub ttl: Duration,
    pub apptainer: bool,
    pub platform: Platform,
    pub parallel_layers: usize,
    /// Directories local sources (`oci:`, `oci-archive:`,
    /// `docker-archive:`) may come from; empty = `docker://` only. Without
    /// it a client could publish any readable archive of this host.
    pub local_source_dirs: Vec<PathBuf>,
}

/// One request, whatever its transport.
#[derive(Debug, Clone, Default)]
pub struct ImageRequest {
    /// skopeo transport syntax.
    pub source: String,
    pub ttl: Option<Duration>,
    pub platform: Option<Platform>,
    pub apptainer: Option<bool>,
    /// The readable link; derived from the source when `None`.
    pub tag: Option<String>,
}

/// A request whose image is identified.
#[derive(Clone)]
pub struct Prepared {
    pub source: String,
    pub digest: Digest,
    /// Where the image is (or will be), as clients see it.
    pub path: PathBuf,
    pub tag: Option<TagName>,
    pub tag_path: Option<PathBuf>,
    ttl: Duration,
    opened: Arc<dyn ImageSource>,
    image: ResolvedImage,
    options: UnpackOptions,
    started: Instant,
    resolve_time: Duration,
}

/// How long the steps took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timings {
    pub resolve_ms: u64,
    pub unpack_ms: u64,
    pub total_ms: u64,
}

/// A request's answer.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: PublishStatus,
    pub record: ImageRecord,
    pub timings: Timings,
}

type Flight = watch::Receiver<Option<Result<Outcome, RequestError>>>;

/// The service.
pub struct Service {
    publisher: Arc<dyn Publisher>,
    store: Arc<Store>,
    opener: Opener,
    defaults: Defaults,
    /// Publisher runs at once (each is CPU and disk work on the blocking pool).
    permits: Arc<Semaphore>,
    /// Unpacks under way, by digest: later requests wait for them.
    flights: Mutex<HashMap<Digest, Flight>>,
    /// Held for writing while images are chosen for removal and removed,
    /// for reading while a request renews an image or starts its flight:
    /// an image renewed meanwhile is never removed.
    removing: tokio::sync::RwLock<()>,
    /// Request ids answered later (HTTP `wait=false`), not finished yet.
    pending: Mutex<HashSet<String>>,
    metrics: UnpackerMetrics,
    shutdown: CancellationToken,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> u64 {
    duration.as_millis().try_into().unwrap_or(u64::MAX)
}

impl Service {
    pub fn new(
        publisher: Arc<dyn Publisher>,
        store: Arc<Store>,
        opener: Opener,
        defaults: Defaults,
        max_concurrent: usize,
        metrics: UnpackerMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        metrics
            .published_images
            .set(store.snapshot().images.len() as i64);
        Self {
            publisher,
            store,
            opener,
            defaults,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            flights: Mutex::new(HashMap::new()),
            removing: tokio::sync::RwLock::new(()),
            pending: Mutex::new(HashSet::new()),
            metrics,
            shutdown,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn metrics(&self) -> &UnpackerMetrics {
        &self.metrics
    }

    /// Prepares and completes `request`, counting its outcome.
    pub async fn request(self: &Arc<Self>, request: ImageRequest) -> Result<Outcome, RequestError> {
        let result = match self.prepare(request).await {
            Ok(prepared) => self.complete(prepared).await,
            Err(err) => Err(err),
        };
        self.count(&result);
        result
    }

    /// Counts a finished request.
    pub fn count(&self, result: &Result<Outcome, RequestError>) {
        match result {
            Ok(outcome) => self.metrics.request(status_name(outcome.status)),
            Err(err) => self.metrics.request(&format!("failed_{}", err.kind())),
        }
    }

    /// Parses, opens and resolves: the digest and path are known after.
    pub async fn prepare(&self, request: ImageRequest) -> Result<Prepared, RequestError> {
        let started = Instant::now();
        let source_ref: SourceRef = request.source.parse()?;
        let tag = match &request.tag {
            Some(tag) if !tag.is_empty() => Some(tag.parse::<TagName>()?),
            _ => TagName::derived(&source_ref),
        };
        self.check_local(&source_ref)?;
        let options = UnpackOptions {
            platform: request
                .platform
                .unwrap_or_else(|| self.defaults.platform.clone()),
            apptainer: request.apptainer.unwrap_or(self.defaults.apptainer),
            parallel_layers: self.defaults.parallel_layers,
            // Shutdown stops an unpack under way (nothing left behind).
            cancel: self.shutdown.clone(),
            ..UnpackOptions::default()
        };
        let opener = self.opener.clone();
        let resolve_options = options.clone();
        let (opened, image) = tokio::task::spawn_blocking(move || {
            let opened: Arc<dyn ImageSource> = Arc::from(opener(&source_ref)?);
            let image = unpack::resolve(opened.as_ref(), &resolve_options)?;
            Ok::<_, RequestError>((opened, image))
        })
        .await
        .map_err(|err| RequestError::Publish(format!("resolving panicked: {err}")))??;
        let digest = image.manifest_digest.clone();
        Ok(Prepared {
            source: request.source,
            path: self.publisher.image_path(&digest),
            tag_path: tag.as_ref().map(|tag| self.publisher.tag_path(tag)),
            digest,
            tag,
            ttl: request.ttl.unwrap_or(self.defaults.ttl),
            opened,
            image,
            options,
            started,
            resolve_time: started.elapsed(),
        })
    }

    /// Refuses a local source outside `local_source_dirs` (symlinks
    /// resolved), the same whether it exists or not (see [`local`]).
    fn check_local(&self, source: &SourceRef) -> Result<(), RequestError> {
        let path = match source {
            SourceRef::Docker { .. } => return Ok(()),
            SourceRef::OciLayout { dir, .. } => dir,
            SourceRef::OciArchive { file, .. } | SourceRef::DockerArchive { file } => file,
        };
        let forbidden = || {
            RequestError::Forbidden(format!(
                "{}: local sources are accepted only under {}",
                path.display(),
                if self.defaults.local_source_dirs.is_empty() {
                    "no directory (this service takes docker:// only)".to_owned()
                } else {
                    self.defaults
                        .local_source_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        };
        let allowed = local::canonical_dirs(&self.defaults.local_source_dirs);
        match local::decide(&local::resolve(path), &allowed) {
            local::Verdict::Read => Ok(()),
            local::Verdict::NotFound => Err(RequestError::NotFound(format!(
                "{}: no such file or directory",
                path.display()
            ))),
            local::Verdict::Forbidden => Err(forbidden()),
        }
    }

    /// Publishes the prepared image, or renews it when it is there.
    pub async fn complete(self: &Arc<Self>, prepared: Prepared) -> Result<Outcome, RequestError> {
        loop {
            let (flight, leader) = {
                let _not_removing = self.removing.read().await;
                if let Some(outcome) = self.renew_present(&prepared).await? {
                    return Ok(outcome);
                }
                self.join_flight(&prepared)
            };
            let shared = wait(flight).await?;
            if leader {
                return Ok(shared);
            }
            // Someone else's unpack published it: renew with our own TTL and
            // tag (the next pass finds it present).
        }
    }

    /// The flight for `prepared.digest`, started if there is none; `true`
    /// when this call started it.
    fn join_flight(self: &Arc<Self>, prepared: &Prepared) -> (Flight, bool) {
        let mut flights = self.flights.lock().expect("flights lock poisoned");
        if let Some(flight) = flights.get(&prepared.digest) {
            return (flight.clone(), false);
        }
        let (sender, receiver) = watch::channel(None);
        flights.insert(prepared.digest.clone(), receiver.clone());
        let service = self.clone();
        let prepared = prepared.clone();
        let span =
            tracing::info_span!("unpack", digest = %prepared.digest, source = %prepared.source);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let result = service.publish(&prepared).await;
                service
                    .flights
                    .lock()
                    .expect("flights lock poisoned")
                    .remove(&prepared.digest);
                let _ = sender.send(Some(result));
            },
            span,
        ));
        (receiver, true)
    }

    /// Digests being unpacked now (the sweep leaves them alone).
    pub(crate) fn in_flight(&self) -> Vec<Digest> {
        self.flights
            .lock()
            .expect("flights lock poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// The answer for an image that is recorded and published, with its
    /// TTL renewed (and its tag link pointed at it, if the request's tag
    /// points elsewhere); `None` when it must be unpacked.
    async fn renew_present(&self, prepared: &Prepared) -> Result<Option<Outcome>, RequestError> {
        let digest = &prepared.digest;
        if self.store.image(digest).is_none() || !self.publisher.contains(digest) {
            return Ok(None);
        }
        if let (Some(tag), Some(tag_path)) = (&prepared.tag, &prepared.tag_path)
            && std::fs::read_link(tag_path).ok() != Some(tag_target(tag, digest))
        {
            let publisher = self.publisher.clone();
            let job = self.job(prepared);
            tokio::task::spawn_blocking(move || publisher.publish(job))
                .await
                .map_err(|err| RequestError::Publish(format!("tag link panicked: {err}")))??;
        }
        let now = now_ms();
        let ttl_ms = millis(prepared.ttl) as i64;
        let tag = prepared.tag.as_ref().zip(prepared.tag_path.as_deref());
        let record = self.store.update(|records| {
            records.images.get_mut(digest).map(|record| {
                record.renew(now, ttl_ms, tag.map(|(t, p)| (t.as_str(), p)));
                record.clone()
            })
        })?;
        let Some(record) = record else {
            return Ok(None);
        };
        Ok(Some(Outcome {
            status: PublishStatus::AlreadyPresent,
            record,
            timings: Timings {
                resolve_ms: millis(prepared.resolve_time),
                unpack_ms: 0,
                total_ms: millis(prepared.started.elapsed()),
            },
        }))
    }

    fn job(&self, prepared: &Prepared) -> PublishJob {
        PublishJob {
            digest: prepared.digest.clone(),
            tag: prepared.tag.clone(),
            content: Arc::new(ImageContent {
                source: prepared.opened.clone(),
                image: prepared.image.clone(),
                options: prepared.options.clone(),
            }),
        }
    }

    /// One publisher run and its record: the body of a flight.
    async fn publish(&self, prepared: &Prepared) -> Result<Outcome, RequestError> {
        let _permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => permit.map_err(|_| RequestError::ShuttingDown)?,
            _ = self.shutdown.cancelled() => return Err(RequestError::ShuttingDown),
        };
        let started = Instant::now();
        let publisher = self.publisher.clone();
        let job = self.job(prepared);
        let published = tokio::task::spawn_blocking(move || publisher.publish(job))
            .await
            .map_err(|err| RequestError::Publish(format!("unpack panicked: {err}")));
        let unpack_time = started.elapsed();
        self.metrics
            .unpack_seconds
            .observe(unpack_time.as_secs_f64());
        let published = match published.and_then(|p| p.map_err(RequestError::from)) {
            Ok(published) => published,
            Err(err) => {
                tracing::warn!(error = %err, "unpack failed");
                self.metrics.unpack(&format!("failed_{}", err.kind()));
                return Err(err);
            }
        };
        self.metrics.unpack(status_name(published.status));
        let report = &published.report;
        self.metrics.bytes_downloaded.inc_by(report.bytes_read);
        self.metrics.bytes_written.inc_by(report.bytes_written);
        self.metrics.files_written.inc_by(report.files_written);
        tracing::info!(
            status = status_name(published.status),
            path = %published.path.display(),
            bytes_read = report.bytes_read,
            files = report.files_written,
            ms = millis(unpack_time),
            "published"
        );
        let now = now_ms();
        let ttl_ms = millis(prepared.ttl) as i64;
        let tag = prepared.tag.as_ref().zip(published.tag_path.as_deref());
        let mut record = ImageRecord {
            digest: prepared.digest.clone(),
            source: prepared.source.clone(),
            tags: Vec::new(),
            path: published.path.clone(),
            tag_path: None,
            bytes_downloaded: report.bytes_read,
            bytes_written: report.bytes_written,
            files_written: report.files_written,
            created_unix_ms: now,
            last_requested_unix_ms: now,
            expires_unix_ms: now,
        };
        let saved = self.store.update(|records| {
            let entry = records
                .images
                .entry(record.digest.clone())
                .or_insert_with(|| record.clone());
            entry.renew(now, ttl_ms, tag.map(|(t, p)| (t.as_str(), p)));
            record = entry.clone();
            records.images.len()
        });
        match saved {
            Ok(count) => {
                self.metrics.published_images.set(count as i64);
            }
            // Published all the same; the record is in memory.
            Err(err) => tracing::error!(error = %err, "saving the records failed"),
        }
        Ok(Outcome {
            status: published.status,
            record,
            timings: Timings {
                resolve_ms: millis(prepared.resolve_time),
                unpack_ms: millis(unpack_time),
                total_ms: millis(prepared.started.elapsed()),
            },
        })
    }
}

async fn wait(mut flight: Flight) -> Result<Outcome, RequestError> {
    match flight.wait_for(Option::is_some).await {
        Ok(value) => value.clone().expect("waited for a value"),
        Err(_) => Err(RequestError::Publish(
            "the unpack task ended without an answer".into(),
        )),
    }
}

/// `published` or `already_present`.
pub fn status_name(status: PublishStatus) -> &'static str {
    match status {
        PublishStatus::Published => "published",
        PublishStatus::AlreadyPresent => "already_present",
    }
}
