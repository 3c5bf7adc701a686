//! `gha-unpacker unpack`: one image into one directory, with a progress
//! bar on stderr when it is a terminal and a one-line summary at the end.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::source::registry::RegistryOptions;
use crate::source::{SourceRef, open_source_with};
use crate::unpack::{UnpackOptions, resolve, unpack_to_dir};

/// Unpacks `source` into `dest` (which must not exist); `docker://` images
/// are reached as `registry` says.
pub fn unpack(
    source: &SourceRef,
    dest: &Path,
    options: &UnpackOptions,
    registry: &RegistryOptions,
) -> anyhow::Result<()> {
    if dest.symlink_metadata().is_ok() {
        anyhow::bail!(
            "--dest {}: already exists; give a path that does not exist yet",
            dest.display()
        );
    }
    let opened = open_source_with(source, registry).with_context(|| format!("opening {source}"))?;
    let image = resolve(opened.as_ref(), options).with_context(|| format!("resolving {source}"))?;
    let total: u64 = image.manifest.layers.iter().map(|l| l.size).sum();
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| watch(options, total));
    let result = unpack_to_dir(opened.as_ref(), &image, dest, options);
    if let Some((bar, stop, handle)) = progress {
        stop.store(true, Ordering::Relaxed);
        let _ = handle.join();
        bar.finish_and_clear();
    }
    let report = result.with_context(|| format!("unpacking {source} into {}", dest.display()))?;
    let seconds = report.duration.as_secs_f64().max(1e-6);
    eprintln!(
        "unpacked {source} ({}) into {}: {} files, {:.1} MB written, {:.1} MB read, {:.2} s ({:.0} MB/s)",
        image.manifest_digest,
        dest.display(),
        report.files_written,
        report.bytes_written as f64 / 1e6,
        report.bytes_read as f64 / 1e6,
        seconds,
        report.bytes_written as f64 / 1e6 / seconds,
    );
    Ok(())
}

type Watcher = (
    ProgressBar,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
);

/// A bar over the compressed bytes read (verified and written at once).
fn watch(options: &UnpackOptions, total: u64) -> Watcher {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {msg}",
        )
        .expect("a valid template"),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counters = options.progress.clone();
    let handle = std::thread::spawn({
        let bar = bar.clone();
        let stop = stop.clone();
        move || {
            while !stop.load(Ordering::Relaxed) {
                bar.set_position(counters.bytes_read.load(Ordering::Relaxed));
                bar.set_message(format!(
                    "{} files written",
                    counters.files_written.load(Ordering::Relaxed)
                ));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    (bar, stop, handle)
}
