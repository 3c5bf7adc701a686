//! Unpack benchmark: a generated multi-layer image (many small files, some
//! large ones, overrides, whiteouts, an opaque directory and hard links
//! between layers) from an `oci:` layout on tmpfs into tmpfs, timed in the
//! same run for this unpacker, `umoci raw unpack`, the naive pipeline
//! (each layer `tar -xzf` in order) and the floor (every layer inflated in
//! parallel to nowhere, plus `tar -x` of the final flat tree).
//!
//! `cargo bench -p gha-unpacker --bench unpack`; `UNPACK_BENCH_MB` sets
//! the uncompressed size (default 1500), `UNPACK_BENCH_ROUNDS` how often
//! each tool runs (default 1; the best wall time counts). The layout is cached under
//! /dev/shm between runs. This unpacker runs in a child process (this
//! binary again) that reports its peak RSS (`VmHWM`).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use gha_unpacker::source::{SourceRef, open_source};
use gha_unpacker::unpack::{UnpackOptions, resolve, unpack_to_dir, unpack_to_tar};

const TAG: &str = "bench";
const CHILD: &str = "GHA_UNPACK_BENCH_CHILD";

fn main() {
    if let Ok(args) = std::env::var(CHILD) {
        let (source, dest) = args.split_once('\n').expect("source\\ndest");
        return child(source, Path::new(dest));
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let megabytes: u64 = std::env::var("UNPACK_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let base = PathBuf::from(format!("/dev/shm/gha-unpacker-bench-{megabytes}"));
    let layout = base.join("layout");
    let started = Instant::now();
    let sizes = generate(&layout, megabytes << 20);
    eprintln!(
        "image: {} layers, {:.0} MB uncompressed, {:.0} MB compressed ({:.1} s to make or find)",
        sizes.len(),
        mb(sizes.iter().map(|s| s.0).sum()),
        mb(sizes.iter().map(|s| s.1).sum()),
        started.elapsed().as_secs_f64()
    );
    let uncompressed: u64 = sizes.iter().map(|s| s.0).sum();
    let work = base.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let source = format!("oci:{}:{TAG}", layout.display());

    let rounds: usize = std::env::var("UNPACK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);

    // The flat tree as one tar, for the floor (not timed).
    let flat = work.join("flat.tar");
    {
        let reference: SourceRef = source.parse().unwrap();
        let opened = open_source(&reference).unwrap();
        let options = UnpackOptions::default();
        let image = resolve(opened.as_ref(), &options).unwrap();
        let mut out = io::BufWriter::new(std::fs::File::create(&flat).unwrap());
        unpack_to_tar(opened.as_ref(), &image, &mut out, &options).unwrap();
        out.flush().unwrap();
    }
    let blobs = layer_blobs(&layout);

    // Each tool once per round, interleaved; the best wall time counts
    // (the machine may be shared: load changes between runs).
    let worst = (f64::MAX, 0.0);
    let (mut ours, mut umoci, mut naive, mut inflate, mut untar) =
        (worst, worst, worst, worst, worst);
    let (mut files, mut written, mut hwm_kb) = (0, 0, 0);
    for _ in 0..rounds {
        // This unpacker, in a child that reports its peak memory.
        let dest = work.join("ours");
        let (t, cpu) = (Instant::now(), children_cpu());
        let output = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, format!("{source}\n{}", dest.display()))
            .output()
            .unwrap();
        ours = best(ours, (t.elapsed().as_secs_f64(), children_cpu() - cpu));
        assert!(output.status.success(), "{output:?}");
        let report = String::from_utf8_lossy(&output.stdout).into_owned();
        let fields: Vec<u64> = report
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        (files, written, hwm_kb) = (fields[0], fields[1], hwm_kb.max(fields[2]));
        remove(&dest);

        let (t, cpu) = (Instant::now(), own_cpu());
        inflate_all(&blobs);
        inflate = best(inflate, (t.elapsed().as_secs_f64(), own_cpu() - cpu));
        let dest = work.join("flat");
        std::fs::create_dir(&dest).unwrap();
        let (t, cpu) = (Instant::now(), children_cpu());
        run(Command::new("tar")
            .arg("-xf")
            .arg(&flat)
            .arg("-C")
            .arg(&dest));
        untar = best(untar, (t.elapsed().as_secs_f64(), children_cpu() - cpu));
        remove(&dest);

        let dest = work.join("naive");
        std::fs::create_dir(&dest).unwrap();
        let (t, cpu) = (Instant::now(), children_cpu());
        for blob in &blobs {
            run(Command::new("tar")
                .arg("-xzf")
                .arg(blob)
                .arg("-C")
                .arg(&dest));
        }
        naive = best(naive, (t.elapsed().as_secs_f64(), children_cpu() - cpu));
        remove(&dest);

        let dest = work.join("umoci");
        let (t, cpu) = (Instant::now(), children_cpu());
        run(Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:{TAG}", layout.display()))
            .arg(&dest));
        umoci = best(umoci, (t.elapsed().as_secs_f64(), children_cpu() - cpu));
        remove(&dest);
    }
    std::fs::remove_file(&flat).unwrap();
    let floor = (inflate.0 + untar.0, inflate.1 + untar.1);

    println!(
        "gha-unpacker unpack benchmark (tmpfs -> tmpfs, {} CPUs, best of {rounds})",
        cpus()
    );
    println!(
        "image: {:.0} MB uncompressed in {} layers; final tree {} files, {:.0} MB",
        mb(uncompressed),
        sizes.len(),
        files,
        mb(written)
    );
    println!(
        "{:<28} {:>9} {:>9} {:>10} {:>13}",
        "", "wall", "CPU", "MB/s", "files/s"
    );
    let line = |name: &str, (seconds, cpu): (f64, f64)| {
        println!(
            "{name:<28} {seconds:>7.2} s {cpu:>7.2} s {:>10.0} {:>13.0}",
            mb(uncompressed) / seconds,
            files as f64 / seconds
        );
    };
    line("gha-unpacker", ours);
    line("umoci raw unpack", umoci);
    line("naive (tar -xzf per layer)", naive);
    line("floor (inflate + tar -x)", floor);
    println!(
        "  floor parts: inflate all layers in parallel {:.2} s, tar -x of the flat tree {:.2} s",
        inflate.0, untar.0
    );
    println!(
        "ratios (wall): {:.1}x faster than umoci (target >= 5), {:.1}x faster than naive (target >= 2), {:.2}x the floor",
        umoci.0 / ours.0,
        naive.0 / ours.0,
        ours.0 / floor.0
    );
    println!(
        "ratios (CPU):  {:.1}x less than umoci, {:.1}x less than naive, {:.2}x the floor",
        umoci.1 / ours.1,
        naive.1 / ours.1,
        ours.1 / floor.1
    );
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("gha-unpacker peak RSS: {:.0} MB", hwm_kb as f64 / 1024.0);
    let _ = std::fs::remove_dir_all(&work);
}

fn child(source: &str, dest: &Path) {
    let reference: SourceRef = source.parse().unwrap();
    let opened = open_source(&reference).unwrap();
    let options = UnpackOptions::default();
    let image = resolve(opened.as_ref(), &options).unwrap();
    let report = unpack_to_dir(opened.as_ref(), &image, dest, &options).unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    println!("{} {} {hwm}", report.files_written, report.bytes_written);
}

/// The run with the shorter wall time.
fn best(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    if b.0 < a.0 { b } else { a }
}

/// CPU seconds (user + system) of this process's waited-for children.
fn children_cpu() -> f64 {
    stat_seconds(&[13, 14])
}

/// CPU seconds of this process (all threads).
fn own_cpu() -> f64 {
    stat_seconds(&[11, 12])
}

/// Sum of fields of /proc/self/stat, counted after the command name
/// (utime is field 14 of the whole line, index 11 here), in seconds.
fn stat_seconds(fields: &[usize]) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let values: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .iter()
        .map(|&i| values[i].parse::<u64>().unwrap())
        .sum();
    ticks as f64 / 100.0
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn run(command: &mut Command) {
    let status = command.status().unwrap();
    assert!(status.success(), "{command:?}: {status}");
}

fn remove(path: &Path) {
    std::fs::remove_dir_all(path).unwrap();
}

fn inflate_all(blobs: &[PathBuf]) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..cpus() {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(blob) = blobs.get(i) else { return };
                    // The unpacker's own inflater (zlib-rs, no CRC).
                    let file = std::fs::File::open(blob).unwrap();
                    let mut decoder = gha_unpacker::compression::decode(file).unwrap();
                    let mut buffer = vec![0; 1 << 20];
                    while decoder.read(&mut buffer).unwrap() > 0 {}
                }
            });
        }
    });
}

fn layer_blobs(layout: &Path) -> Vec<PathBuf> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(&digest.as_str().unwrap()[7..])
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&index["manifests"][0]["digest"])).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(&l["digest"]))
        .collect()
}

#[path = "unpack/generate.rs"]
mod generate;
use generate::generate;
