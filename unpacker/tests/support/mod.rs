//! Test support: OCI image layouts written from hand-made tar layers, and
//! a tree snapshot to compare unpacked directories entry by entry.
#![allow(dead_code)]

pub mod snapshot;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug)]
pub enum Compress {
    Gzip,
    Zstd,
    None,
}

/// One layer's tar, built entry by entry.
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
    pub compress: Compress,
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header.set_size(0);
    header
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
            compress: Compress::Gzip,
        }
    }

    pub fn compressed(mut self, compress: Compress) -> Self {
        self.compress = compress;
        self
    }

    pub fn dir(self, path: &str) -> Self {
        self.dir_mode(path, 0o755)
    }

    pub fn dir_mode(mut self, path: &str, mode: u32) -> Self {
        let mut h = header(tar::EntryType::Directory, mode);
        self.builder.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn file(self, path: &str, content: &str) -> Self {
        self.file_full(path, content.as_bytes(), 0o644, 0, 0)
    }

    pub fn file_full(mut self, path: &str, content: &[u8], mode: u32, uid: u64, gid: u64) -> Self {
        let mut h = header(tar::EntryType::Regular, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(content.len() as u64);
        self.builder.append_data(&mut h, path, content).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Symlink, 0o777);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Link, 0o644);
        self.builder.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn fifo(mut self, path: &str) -> Self {
        let mut h = header(tar::EntryType::Fifo, 0o640);
        self.builder.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// A file whose name (and, for a symlink, target) is carried by a PAX
    /// extended header, as Go's archive/tar and BuildKit write long names.
    pub fn pax_entry(mut self, path: &str, link_target: Option<&str>, content: &str) -> Self {
        let mut records = pax_record("path", path.as_bytes());
        if let Some(target) = link_target {
            records.extend(pax_record("linkpath", target.as_bytes()));
        }
        let mut x = header(tar::EntryType::XHeader, 0o644);
        x.set_size(records.len() as u64);
        x.as_old_mut().name[..12].copy_from_slice(b"PaxHeaders/x");
        x.set_cksum();
        self.builder.append(&x, &records[..]).unwrap();
        let kind = if link_target.is_some() {
            tar::EntryType::Symlink
        } else {
            tar::EntryType::Regular
        };
        let mut h = header(kind, 0o644);
        let short = &path.as_bytes()[..path.len().min(99)];
        h.as_old_mut().name[..short.len()].copy_from_slice(short);
        h.set_size(if link_target.is_some() {
            0
        } else {
            content.len() as u64
        });
        h.set_cksum();
        let data = if link_target.is_some() { "" } else { content };
        self.builder.append(&h, data.as_bytes()).unwrap();
        self
    }

    /// A regular file with extended attributes in a PAX header.
    pub fn file_xattrs(mut self, path: &str, content: &str, xattrs: &[(&str, &[u8])]) -> Self {
        let records: Vec<u8> = xattrs
            .iter()
            .flat_map(|(name, value)| pax_record(&format!("SCHILY.xattr.{name}"), value))
            .collect();
        let mut x = header(tar::EntryType::XHeader, 0o644);
        x.set_size(records.len() as u64);
        x.as_old_mut().name[..12].copy_from_slice(b"PaxHeaders/x");
        x.set_cksum();
        self.builder.append(&x, &records[..]).unwrap();
        self.file(path, content)
    }

    pub fn chardev(mut self, path: &str, major: u32, minor: u32) -> Self {
        let mut h = header(tar::EntryType::Char, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.builder.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    /// `.wh.NAME` beside `path`.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, "")
    }

    pub fn opaque(self, dir: &str) -> Self {
        if dir.is_empty() {
            return self.file(".wh..wh..opq", "");
        }
        self.file(&format!("{dir}/.wh..wh..opq"), "")
    }

    /// An entry with a raw name (`..`, absolute), bypassing the tar
    /// crate's own checks.
    pub fn raw_file(mut self, name: &str, content: &str) -> Self {
        let mut h = header(tar::EntryType::Regular, 0o644);
        h.set_size(content.len() as u64);
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        self.builder.append(&h, content.as_bytes()).unwrap();
        self
    }

    /// (uncompressed tar, compressed blob)
    pub fn finish(self) -> (Vec<u8>, Vec<u8>) {
        let tar = self.builder.into_inner().unwrap();
        let blob = match self.compress {
            Compress::Gzip => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&tar).unwrap();
                gz.finish().unwrap()
            }
            Compress::Zstd => zstd::encode_all(&tar[..], 1).unwrap(),
            Compress::None => tar.clone(),
        };
        (tar, blob)
    }
}

/// One PAX record, `<length> key=value\n`, the length counting itself.
/// One PAX record, `<length> <key>=<value>\n`, its length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut length = rest + 1;
    while length != rest + length.to_string().len() {
        length = rest + length.to_string().len();
    }
    [format!("{length} {key}=").as_bytes(), value, b"\n"].concat()
}

pub fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What to break in a layout, for the failure tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corrupt {
    Nothing,
    /// Flip a byte of the first layer's blob.
    Blob,
    /// Claim a wrong `diff_id` for the first layer.
    DiffId,
}

/// Writes an OCI layout at `dir` holding one image tagged `tag`.
pub fn write_layout(dir: &Path, tag: &str, layers: Vec<Layer>, corrupt: Corrupt) -> PathBuf {
    write_layout_with_config(dir, tag, layers, corrupt, serde_json::json!({}))
}

pub fn write_layout_with_config(
    dir: &Path,
    tag: &str,
    layers: Vec<Layer>,
    corrupt: Corrupt,
    run_config: serde_json::Value,
) -> PathBuf {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let digest = sha(bytes);
        std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
        (digest, bytes.len())
    };
    let mut diff_ids = Vec::new();
    let mut descriptors = Vec::new();
    for (i, layer) in layers.into_iter().enumerate() {
        let media = match layer.compress {
            Compress::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compress::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compress::None => "application/vnd.oci.image.layer.v1.tar",
        };
        let (tar, blob) = layer.finish();
        diff_ids.push(if i == 0 && corrupt == Corrupt::DiffId {
            sha(b"not this layer")
        } else {
            sha(&tar)
        });
        let (digest, size) = put(&blob);
        if i == 0 && corrupt == Corrupt::Blob {
            let path = blobs.join(&digest[7..]);
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last / 2] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
        descriptors.push(serde_json::json!({"mediaType": media, "digest": digest, "size": size}));
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": run_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": descriptors,
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_owned()
}
