//! Flattening layers into one tree, in two passes over the layers.
//!
//! 1. [`plan`]: every layer's headers are read in parallel (both digests
//!    checked), then applied in order to an in-memory [`plan::Plan`].
//! 2. A writer ([`write_dir`] or [`write_tar`]) reads the layers again and
//!    writes only the entries that survive, each file's bytes once.
//!
//! Memory holds headers, never file contents: a layer is streamed.

pub mod entry;
pub mod layer;
pub mod plan;
pub mod write_dir;
pub mod write_tar;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::image::{Descriptor, Digest};
use crate::source::ImageSource;
use crate::unpack::UnpackError;

use layer::{Scanned, Stream, scan};
use plan::{Plan, Tree};

/// Live progress of an unpack, readable from another thread (progress
/// bars, the service's metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Compressed bytes read and verified in the first pass.
    pub bytes_read: AtomicU64,
    /// Compressed bytes read again in the second pass.
    pub bytes_reread: AtomicU64,
    /// File content written.
    pub bytes_written: AtomicU64,
    /// Files, links, FIFOs and devices created (one per inode).
    pub files_written: AtomicU64,
}

impl Counters {
    fn file_written(&self, bytes: u64) {
        self.files_written.fetch_add(1, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The layers of one image and where to read them.
pub struct LayerRefs<'a> {
    pub source: &'a dyn ImageSource,
    pub descriptors: &'a [Descriptor],
    pub diff_ids: &'a [Digest],
}

impl LayerRefs<'_> {
    fn open<'c>(&self, layer: usize, counter: &'c AtomicU64) -> Result<Stream<'c>, UnpackError> {
        Stream::open(
            self.source,
            &self.descriptors[layer],
            layer,
            &self.diff_ids[layer],
            counter,
        )
    }
}

/// Runs `work(i)` for `0..count` on up to `parallel` threads; the first
/// error stops the rest and is returned.
pub(crate) fn parallel_map<T: Send>(
    count: usize,
    parallel: usize,
    work: impl Fn(usize) -> Result<T, UnpackError> + Sync,
) -> Result<Vec<T>, UnpackError> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
    let failure: Mutex<Option<UnpackError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    if failure.lock().expect("not poisoned").is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    match work(i) {
                        Ok(value) => results.lock().expect("not poisoned")[i] = Some(value),
                        Err(err) => {
                            failure.lock().expect("not poisoned").get_or_insert(err);
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = failure.into_inner().expect("not poisoned") {
        return Err(err);
    }
    Ok(results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect())
}

/// First pass: the final tree of `layers`, every digest verified.
pub fn plan(
    layers: &LayerRefs<'_>,
    parallel: usize,
    counters: &Counters,
) -> Result<Tree, UnpackError> {
    let scanned: Vec<Scanned> = parallel_map(layers.descriptors.len(), parallel, |layer| {
        scan(
            layers.source,
            &layers.descriptors[layer],
            layer,
            &layers.diff_ids[layer],
            &counters.bytes_read,
        )
    })?;
    let mut plan = Plan::default();
    for (layer, scanned) in scanned.iter().enumerate() {
        for (path, kind) in &scanned.skipped {
            tracing::warn!(layer, path, kind, "tar entry type not unpacked");
        }
        for (index, entry) in &scanned.entries {
            plan.apply(layer, *index, entry).map_err(|err| {
                if err.escapes {
                    UnpackError::UnsafePath {
                        layer,
                        path: err.path,
                        why: err.why,
                    }
                } else {
                    UnpackError::Invalid {
                        what: format!("layer {layer} entry {:?}", err.path),
                        detail: err.why,
                    }
                }
            })?;
        }
    }
    Ok(plan.finish())
}
