//! Pulling from the local `docker-registry` over loopback: time from
//! `docker://` to an unpacked directory, against the same image unpacked
//! from an `oci:` layout (no network) in the same run, the bare download
//! of its layers (the network floor), and `skopeo copy` to a layout.
//!
//! Run: `cargo bench -p gha-unpacker --bench registry_pull`
//! (`GHA_BENCH_SCALE=0.25` for a smaller image, `GHA_BENCH_RUNS=N`).
//! Everything lives on tmpfs (`/dev/shm`) so that disk writeback does not
//! swamp the figures.

use std::process::Command;
use std::time::{Duration, Instant};

use gha_testkit::registry::{Layer, OciLayout, Registry};
use gha_unpacker::image::Platform;
use gha_unpacker::source::registry::{RegistryOptions, RegistrySource};
use gha_unpacker::source::{ImageSource, RegistryReference, SourceRef, open_source};
use gha_unpacker::unpack::{UnpackOptions, resolve, unpack_to_dir};

const REPO: &str = "bench/image";

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("registry_pull: run with `cargo bench` to measure");
        return Ok(());
    }
    let scale: f64 = env_or("GHA_BENCH_SCALE", 1.0);
    let runs: usize = env_or("GHA_BENCH_RUNS", 3);
    let work = tempfile::Builder::new()
        .prefix("gha-bench-registry-")
        .tempdir_in("/dev/shm")?;

    let started = Instant::now();
    let mut layout = OciLayout::create(&work.path().join("layout"))?;
    let layers = generate_layers(scale);
    let uncompressed: u64 = layers
        .iter()
        .flat_map(|layer| &layer.entries)
        .map(|(_, content)| content.len() as u64)
        .sum();
    let files: usize = layers.iter().map(|layer| layer.entries.len()).sum();
    let image = layout.add_image("amd64", &layers)?;
    drop(layers);
    layout.tag("v1", &image.manifest)?;
    let compressed: u64 = image.layers.iter().map(|layer| layer.size).sum();
    println!(
        "image: {} layers, {files} entries, {:.0} MB of file content, {:.0} MB compressed (built in {:.1} s)",
        image.layers.len(),
        mb(uncompressed),
        mb(compressed),
        started.elapsed().as_secs_f64()
    );

    let registry = Registry::start_in(work.path())?;
    let started = Instant::now();
    registry.push(layout.dir(), "v1", REPO, "v1", false)?;
    println!(
        "pushed with skopeo in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let options = UnpackOptions {
        platform: Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
        ..UnpackOptions::default()
    };
    let empty_auth = work.path().join("auth.json");
    std::fs::write(&empty_auth, "{}")?;
    let registry_source = || {
        RegistrySource::new(
            &registry.host(),
            REPO,
            RegistryReference::Tag("v1".into()),
            RegistryOptions {
                auth_file: Some(empty_auth.clone()),
                ..RegistryOptions::default()
            },
        )
    };

    let mut local = Vec::new();
    let mut pulled = Vec::new();
    let mut download = Vec::new();
    let mut skopeo = Vec::new();
    for run in 0..runs {
        let dest = work.path().join(format!("local-{run}"));
        let reference: SourceRef = format!("oci:{}:v1", layout.dir().display()).parse()?;
        local.push(timed(|| {
            let source = open_source(&reference)?;
            let resolved = resolve(source.as_ref(), &options)?;
            unpack_to_dir(source.as_ref(), &resolved, &dest, &options)?;
            Ok(())
        })?);
        std::fs::remove_dir_all(&dest)?;

        let dest = work.path().join(format!("pulled-{run}"));
        pulled.push(timed(|| {
            let source = registry_source()?;
            let resolved = resolve(&source, &options)?;
            unpack_to_dir(&source, &resolved, &dest, &options)?;
            Ok(())
        })?);
        std::fs::remove_dir_all(&dest)?;

        download.push(timed(|| {
            let source = registry_source()?;
            let resolved = resolve(&source, &options)?;
            std::thread::scope(|scope| {
                let readers: Vec<_> = resolved
                    .manifest
                    .layers
                    .iter()
                    .map(|layer| {
                        let source = &source;
                        scope.spawn(move || -> anyhow::Result<u64> {
                            let mut blob = source.blob(layer)?;
                            Ok(std::io::copy(&mut blob, &mut std::io::sink())?)
                        })
                    })
                    .collect();
                for reader in readers {
                    reader.join().expect("download thread")?;
                }
                anyhow::Ok(())
            })
        })?);

        let copy = work.path().join(format!("skopeo-{run}"));
        skopeo.push(timed(|| {
            let status = Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{}/{REPO}:v1", registry.host()))
                .arg(format!("oci:{}:v1", copy.display()))
                .status()?;
            anyhow::ensure!(status.success(), "skopeo copy failed");
            Ok(())
        })?);
        std::fs::remove_dir_all(&copy)?;
    }

    let local = median(local);
    let pulled = median(pulled);
    let download = median(download);
    let skopeo = median(skopeo);
    println!("\nmedian of {runs} runs, on tmpfs, {} CPUs:", cpus());
    let row = |name: &str, time: Duration, bytes: u64, what: &str| {
        println!(
            "  {name:<38} {:>7.2} s  {:>7.0} MB/s {what}",
            time.as_secs_f64(),
            mb(bytes) / time.as_secs_f64()
        );
    };
    row(
        "unpack oci: layout (no network)",
        local,
        uncompressed,
        "written",
    );
    row(
        "unpack docker:// (loopback registry)",
        pulled,
        uncompressed,
        "written",
    );
    row(
        "download layers only (parallel)",
        download,
        compressed,
        "compressed",
    );
    row(
        "skopeo copy docker:// -> oci:",
        skopeo,
        compressed,
        "compressed",
    );
    println!(
        "  docker:// / oci: = {:.2}; docker:// / skopeo copy = {:.2}",
        pulled.as_secs_f64() / local.as_secs_f64(),
        pulled.as_secs_f64() / skopeo.as_secs_f64()
    );
    Ok(())
}

/// Layers like a provisioner image's: many small files, a few large ones,
/// and an upper layer that overrides part of a lower one. Content is a
/// quarter random bytes, the rest from an 8-letter alphabet (gzip level 1,
/// as the layout writer uses, gets about 1.2:1 out of it).
fn generate_layers(scale: f64) -> Vec<Layer> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let count = |n: f64| ((n * scale).round() as usize).max(1);
    let small = |rng: &mut XorShift, prefix: &str, n: usize| {
        let mut entries = vec![(format!("{prefix}/"), Vec::new())];
        for i in 0..n {
            let dir = format!("{prefix}/d{:03}/", i / 200);
            if i % 200 == 0 {
                entries.push((dir.clone(), Vec::new()));
            }
            let size = 512 + (rng.next() % 16_384) as usize;
            entries.push((format!("{dir}f{i:05}"), rng.content(size)));
        }
        entries
    };
    let large = |rng: &mut XorShift, prefix: &str, n: usize, size: usize| {
        let mut entries = vec![(format!("{prefix}/"), Vec::new())];
        for i in 0..n {
            entries.push((format!("{prefix}/big{i}"), rng.content(size)));
        }
        entries
    };
    let mb = |n: f64| (n * scale * 1e6) as usize;
    vec![
        Layer {
            entries: small(&mut rng, "usr/lib", count(20_000.0)),
        },
        Layer {
            entries: large(&mut rng, "opt/tools", 4, mb(40.0)),
        },
        Layer {
            entries: small(&mut rng, "usr/lib", count(5_000.0)),
        },
        Layer {
            entries: large(&mut rng, "opt/data", 2, mb(50.0)),
        },
    ]
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn content(&mut self, size: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(size + 8);
        while out.len() < size {
            out.extend_from_slice(&self.next().to_le_bytes());
            for _ in 0..3 {
                let word = self.next().to_le_bytes();
                out.extend(word.iter().map(|b| b"abcdefgh"[(b & 7) as usize]));
            }
        }
        out.truncate(size);
        out
    }
}

fn timed(work: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    work()?;
    Ok(started.elapsed())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
