//! Small test images written as OCI image layouts by Rust code: gzip tar
//! layers, a config with the layers' `diff_ids`, manifests, and indexes for
//! several platforms (with a buildx-style attestation manifest), so that
//! registry tests push images without pulling anything from the internet.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One file system layer: entries in tar order. A path ending in `/` is a
/// directory; anything else a regular file with the given content.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    pub entries: Vec<(String, Vec<u8>)>,
}

impl Layer {
    /// A layer of regular files (and `dir/` entries).
    pub fn files(entries: &[(&str, &str)]) -> Self {
        Self {
            entries: entries
                .iter()
                .map(|(path, content)| ((*path).to_owned(), content.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// The uncompressed tar.
    pub fn tar(&self) -> anyhow::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_mtime(1_700_000_000);
            header.set_uid(0);
            header.set_gid(0);
            if path.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, std::io::empty())?;
            } else {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, path, content.as_slice())?;
            }
        }
        Ok(builder.into_inner()?)
    }
}

/// A blob in the layout: what a descriptor says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

impl BlobRef {
    fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// An image written into a layout.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub manifest: BlobRef,
    pub config: BlobRef,
    pub layers: Vec<BlobRef>,
    pub architecture: String,
}

/// An OCI image layout directory being written.
pub struct OciLayout {
    dir: PathBuf,
    /// `index.json`'s entries: the tagged manifests and indexes.
    tagged: Vec<Value>,
}

impl OciLayout {
    /// An empty layout at `dir` (created).
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let layout = Self {
            dir: dir.to_owned(),
            tagged: Vec::new(),
        };
        layout.write_index()?;
        Ok(layout)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `bytes` under their digest.
    pub fn add_blob(&self, media_type: &str, bytes: &[u8]) -> anyhow::Result<BlobRef> {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(self.dir.join("blobs/sha256").join(&hex), bytes)?;
        Ok(BlobRef {
            media_type: media_type.to_owned(),
            digest: format!("sha256:{hex}"),
            size: bytes.len() as u64,
        })
    }

    /// A linux image for `architecture` with `layers` (gzip-compressed).
    pub fn add_image(&self, architecture: &str, layers: &[Layer]) -> anyhow::Result<BuiltImage> {
        let mut layer_refs = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in layers {
            let tar = layer.tar()?;
            diff_ids.push(format!("sha256:{}", hex::encode(Sha256::digest(&tar))));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&tar)?;
            layer_refs.push(self.add_blob(OCI_LAYER_GZIP, &gz.finish()?)?);
        }
        let config = json!({
            "architecture": architecture,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = self.add_blob(OCI_CONFIG, &serde_json::to_vec(&config)?)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": layer_refs.iter().map(BlobRef::descriptor).collect::<Vec<_>>(),
        });
        let manifest = self.add_blob(OCI_MANIFEST, &serde_json::to_vec(&manifest)?)?;
        Ok(BuiltImage {
            manifest,
            config,
            layers: layer_refs,
            architecture: architecture.to_owned(),
        })
    }

    /// An index of `images` (`linux/<architecture>` each), with an
    /// attestation manifest for the first one as buildx writes it
    /// (platform `unknown/unknown`), which pullers must skip.
    pub fn add_index(&self, images: &[BuiltImage]) -> anyhow::Result<BlobRef> {
        self.write_index_blob(images, true)
    }

    /// An index of `images` without an attestation manifest: what can be
    /// converted to a Docker manifest list (`skopeo --format v2s2`).
    pub fn add_plain_index(&self, images: &[BuiltImage]) -> anyhow::Result<BlobRef> {
        self.write_index_blob(images, false)
    }

    fn write_index_blob(
        &self,
        images: &[BuiltImage],
        attestation: bool,
    ) -> anyhow::Result<BlobRef> {
        let mut manifests: Vec<Value> = images
            .iter()
            .map(|image| {
                let mut descriptor = image.manifest.descriptor();
                descriptor["platform"] = json!({"os": "linux", "architecture": image.architecture});
                descriptor
            })
            .collect();
        if let Some(first) = images.first().filter(|_| attestation) {
            let statement = self.add_blob("application/vnd.in-toto+json", b"{}")?;
            let empty_config = self.add_blob(OCI_CONFIG, b"{}")?;
            let attestation = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": empty_config.descriptor(),
                "layers": [statement.descriptor()],
            });
            let attestation = self.add_blob(OCI_MANIFEST, &serde_json::to_vec(&attestation)?)?;
            let mut descriptor = attestation.descriptor();
            descriptor["platform"] = json!({"os": "unknown", "architecture": "unknown"});
            descriptor["annotations"] = json!({
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": first.manifest.digest,
            });
            manifests.push(descriptor);
        }
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        self.add_blob(OCI_INDEX, &serde_json::to_vec(&index)?)
    }

    /// Names `target` (a manifest or an index) `tag` in `index.json`.
    pub fn tag(&mut self, tag: &str, target: &BlobRef) -> anyhow::Result<()> {
        let mut descriptor = target.descriptor();
        descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.tagged.push(descriptor);
        self.write_index()
    }

    fn write_index(&self) -> anyhow::Result<()> {
        let index = json!({"schemaVersion": 2, "manifests": self.tagged});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&index)?)?;
        Ok(())
    }
}
