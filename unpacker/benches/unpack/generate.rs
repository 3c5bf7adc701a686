//! The benchmark image: a deterministic multi-layer OCI layout of about
//! the requested uncompressed size, written once and cached.
//!
//! Layer 0 is a base (~40%: directories of small files, a few 32 MB
//! files); each upper layer adds its own files and also rewrites base
//! files, whites out files and a whole directory, makes a directory
//! opaque, and hard-links base files (some of which a later layer
//! rewrites).

use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

const LAYERS: usize = 6;
const BIG: u64 = 32 << 20;
const DIRS: usize = 100;

enum Spec {
    Dir(String),
    File(String, u64, u64),
    HardLink(String, String),
    Symlink(String, String),
    Empty(String),
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn small_size(&mut self) -> u64 {
        256 << (self.next() % 8) | (self.next() % 256)
    }
}

/// Content that compresses about as well as real binaries and text:
/// stretches copied from a low-entropy corpus, mixed with fresh bytes.
fn content(corpus: &[u8], seed: u64, size: u64, out: &mut Vec<u8>) {
    out.clear();
    let mut rng = Rng(seed | 1);
    while (out.len() as u64) < size {
        let want = (size - out.len() as u64) as usize;
        let r = rng.next();
        let len = (16 + (r % 240) as usize).min(want);
        if r.is_multiple_of(4) {
            out.extend((0..len).map(|i| b"etaoinshrdlucmfw"[((r >> (i % 60)) & 15) as usize]));
        } else {
            let at = (r >> 8) as usize % (corpus.len() - len);
            out.extend_from_slice(&corpus[at..at + len]);
        }
    }
}

fn specs(total: u64) -> Vec<Vec<Spec>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut layers: Vec<Vec<Spec>> = (0..LAYERS).map(|_| Vec::new()).collect();
    let base_budget = total * 40 / 100;
    let upper_budget = (total - base_budget) / (LAYERS as u64 - 1);
    let mut base_files: Vec<Vec<String>> = vec![Vec::new(); DIRS];
    let base = &mut layers[0];
    for dir in ["usr", "usr/share", "opt", "opt/big"] {
        base.push(Spec::Dir(dir.into()));
    }
    let mut used = 0;
    let mut big = 0;
    while used < base_budget / 4 {
        base.push(Spec::File(format!("opt/big/b{big}"), BIG, rng.next()));
        used += BIG;
        big += 1;
    }
    for d in 0..DIRS {
        base.push(Spec::Dir(format!("usr/share/d{d:03}")));
    }
    let mut n = 0;
    while used < base_budget {
        let d = n % DIRS;
        let size = rng.small_size();
        let path = format!("usr/share/d{d:03}/f{n}");
        base.push(Spec::File(path.clone(), size, rng.next()));
        base_files[d].push(path);
        used += size;
        n += 1;
    }
    for (k, layer) in layers.iter_mut().enumerate().skip(1) {
        let mut used = 0;
        layer.push(Spec::Dir(format!("layer{k}")));
        layer.push(Spec::Empty(format!("usr/share/.wh.d{k:03}")));
        let opaque = format!("usr/share/d{:03}", 10 + k);
        layer.push(Spec::Dir(opaque.clone()));
        layer.push(Spec::Empty(format!("{opaque}/.wh..wh..opq")));
        layer.push(Spec::File(format!("{opaque}/fresh"), 4096, rng.next()));
        for files in &base_files[20..50] {
            if let Some(path) = files.get(k) {
                let (dir, name) = path.rsplit_once('/').unwrap();
                layer.push(Spec::Empty(format!("{dir}/.wh.{name}")));
            }
        }
        for (d, files) in base_files.iter().enumerate().skip(50) {
            for path in files.iter().skip(k).step_by(30) {
                let size = rng.small_size();
                layer.push(Spec::File(path.clone(), size, rng.next()));
                used += size;
            }
            if let Some(target) = files.get(k * 7) {
                layer.push(Spec::HardLink(format!("layer{k}/link{d}"), target.clone()));
            }
        }
        layer.push(Spec::Symlink(
            format!("layer{k}/to-big"),
            "/opt/big/b0".into(),
        ));
        layer.push(Spec::File(format!("layer{k}/big"), BIG, rng.next()));
        used += BIG;
        let mut n = 0;
        while used < upper_budget {
            if n % 500 == 0 {
                layer.push(Spec::Dir(format!("layer{k}/d{}", n / 500)));
            }
            let size = rng.small_size();
            layer.push(Spec::File(
                format!("layer{k}/d{}/f{n}", n / 500),
                size,
                rng.next(),
            ));
            used += size;
            n += 1;
        }
    }
    layers
}

struct Tee<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn tee<W>(inner: W) -> Tee<W> {
    Tee {
        inner,
        hasher: Sha256::new(),
        count: 0,
    }
}

/// (diff_id hex, uncompressed size, blob hex, blob size)
fn write_layer(
    blobs: &Path,
    index: usize,
    specs: &[Spec],
    corpus: &[u8],
) -> (String, u64, String, u64) {
    let temp = blobs.join(format!("tmp-{index}"));
    let file = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&temp).unwrap());
    let gz = flate2::write::GzEncoder::new(tee(file), flate2::Compression::default());
    let mut builder = tar::Builder::new(tee(gz));
    let mut data = Vec::new();
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    };
    for spec in specs {
        match spec {
            Spec::Dir(path) => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                builder.append_data(&mut h, path, io::empty()).unwrap();
            }
            Spec::File(path, size, seed) => {
                content(corpus, *seed, *size, &mut data);
                let mut h = header(tar::EntryType::Regular, 0o644, *size);
                builder.append_data(&mut h, path, &data[..]).unwrap();
            }
            Spec::Empty(path) => {
                let mut h = header(tar::EntryType::Regular, 0o644, 0);
                builder.append_data(&mut h, path, io::empty()).unwrap();
            }
            Spec::HardLink(path, target) => {
                let mut h = header(tar::EntryType::Link, 0o644, 0);
                builder.append_link(&mut h, path, target).unwrap();
            }
            Spec::Symlink(path, target) => {
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                builder.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    let tar = builder.into_inner().unwrap();
    let diff = hex::encode(tar.hasher.finalize());
    let tar_size = tar.count;
    let mut compressed = tar.inner.finish().unwrap();
    compressed.flush().unwrap();
    let blob = hex::encode(compressed.hasher.clone().finalize());
    let blob_size = compressed.count;
    drop(compressed);
    std::fs::rename(&temp, blobs.join(&blob)).unwrap();
    (diff, tar_size, blob, blob_size)
}

/// Writes (or finds) the layout; per layer (uncompressed, compressed) size.
pub fn generate(layout: &Path, total: u64) -> Vec<(u64, u64)> {
    let done = layout.join("sizes.json");
    if let Ok(bytes) = std::fs::read(&done) {
        return serde_json::from_slice(&bytes).unwrap();
    }
    let _ = std::fs::remove_dir_all(layout);
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let mut rng = Rng(42);
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 \n{}();=<>_-./ABC";
    let corpus: Vec<u8> = (0..1 << 20)
        .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
        .collect();
    let specs = specs(total);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let (blobs, corpus) = (&blobs, &corpus);
                scope.spawn(move || write_layer(blobs, i, layer, corpus))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let put = |bytes: Vec<u8>| {
        let digest = hex::encode(Sha256::digest(&bytes));
        std::fs::write(blobs.join(&digest), &bytes).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": results.iter().map(|r| format!("sha256:{}", r.0)).collect::<Vec<_>>()},
    });
    let (config_digest, config_size) = put(serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": results.iter().map(|r| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{}", r.2), "size": r.3,
        })).collect::<Vec<_>>(),
    });
    let (manifest_digest, manifest_size) = put(serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": super::TAG},
    }]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let sizes: Vec<(u64, u64)> = results.iter().map(|r| (r.1, r.3)).collect();
    std::fs::write(&done, serde_json::to_vec(&sizes).unwrap()).unwrap();
    sizes
}
