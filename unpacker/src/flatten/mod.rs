//! Flattening layers into one tree.
//!
//! [`plan()`] reads every layer in parallel (both digests checked) and
//! applies the headers in order to an in-memory [`plan::Plan`]: the final
//! tree. Then:
//!
//! - into a directory: the first pass also wrote each regular file's
//!   content to a spool as it streamed past ([`spool`]), so [`write_dir`]
//!   only creates directories and links and renames the surviving files
//!   into place: one inflate per layer, every layer at once;
//! - into a tar stream: [`write_tar`] reads the layers a second time and
//!   copies only the surviving entries into the output.
//!
//! Memory holds headers, never file contents: a layer is streamed.

pub mod entry;
pub mod layer;
mod pipe;
pub mod plan;
pub mod spool;
pub mod write_dir;
pub mod write_tar;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::image::{Descriptor, Digest};
use crate::source::ImageSource;
use crate::unpack::{UnpackError, UnpackOptions};

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
                            let mut slot = failure.lock().expect("not poisoned");
                            // The first real error, not the others' stopping.
                            if slot.is_none() || matches!(*slot, Some(UnpackError::Cancelled)) {
                                *slot = Some(err);
                            }
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

/// First pass: the final tree of `layers`, every digest verified; with a
/// `spool`, every regular file's content is written there on the way.
pub fn plan(
    layers: &LayerRefs<'_>,
    options: &UnpackOptions,
    spool: Option<&spool::Spool<'_>>,
) -> Result<Tree, UnpackError> {
    let counters = &options.progress;
    let layer_count = layers.descriptors.len();
    // Stops the other layers as soon as one fails.
    let stop = options.cancel.child_token();
    let scanned: Vec<Scanned> = parallel_map(layer_count, options.parallel_layers, |layer| {
        scan(
            layers.source,
            &layers.descriptors[layer],
            layer,
            &layers.diff_ids[layer],
            &counters.bytes_read,
            spool,
            &stop,
        )
        .inspect_err(|_| stop.cancel())
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
