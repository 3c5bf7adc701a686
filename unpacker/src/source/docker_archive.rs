//! `docker-archive:FILE`: the output of `docker save`.
//!
//! Docker 25+ archives hold an OCI layout (`index.json`, `blobs/`) and are
//! read as one. Older ("legacy") archives hold `manifest.json` naming a
//! config file and uncompressed `layer.tar`s; for those an OCI manifest is
//! synthesised (its digest is that of the synthesised bytes), and each
//! layer's blob digest is its `diff_id`, which the unpacker verifies like
//! any other digest.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::layout::LayoutSource;
use super::store::{Store, TarStore};
use super::{Fetched, ImageSource, SourceError};
use crate::image::{Descriptor, Digest, ImageConfig, Manifest, media_type};

/// Opens a `docker save` archive in whichever form it has. skopeo's
/// `docker-archive:FILE:NAME:TAG` names an image inside the archive: when
/// `file` does not exist but its part before a `:` does, the rest is that
/// name, and must be one of the image's `RepoTags`.
pub fn open(file: &Path) -> Result<Box<dyn ImageSource>, SourceError> {
    let (file, wanted) = split_reference(file);
    let store = TarStore::index(file)?;
    let label = format!("docker-archive:{}", file.display());
    if store.contains("index.json") && store.contains("oci-layout") {
        return Ok(Box::new(LayoutSource::open(store, label, None)?));
    }
    Ok(Box::new(LegacyArchive::open(store, label, wanted)?))
}

/// Whether two image names are the same once expanded as docker does
/// (`img:t` is `docker.io/library/img:t`; skopeo writes the long form,
/// `docker save` the short one).
fn same_name(a: &str, b: &str) -> bool {
    fn expand(name: &str) -> String {
        match name.split_once('/') {
            None => format!("docker.io/library/{name}"),
            Some((first, _))
                if !first.contains('.') && !first.contains(':') && first != "localhost" =>
            {
                format!("docker.io/{name}")
            }
            Some(_) => name.to_owned(),
        }
    }
    expand(a) == expand(b)
}

/// `FILE[:NAME:TAG]` -> (FILE, NAME:TAG), looking at the file system.
fn split_reference(path: &Path) -> (&Path, Option<&str>) {
    if path.exists() {
        return (path, None);
    }
    let Some(text) = path.to_str() else {
        return (path, None);
    };
    let mut at = text.len();
    while let Some(colon) = text[..at].rfind(':') {
        if Path::new(&text[..colon]).is_file() {
            return (Path::new(&text[..colon]), Some(&text[colon + 1..]));
        }
        at = colon;
    }
    (path, None)
}

/// One image of `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SavedImage {
    config: String,
    layers: Vec<String>,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

/// A legacy `docker save` archive, seen through a synthesised manifest.
pub struct LegacyArchive {
    store: TarStore,
    label: String,
    manifest: Fetched,
    /// Blob digest -> archive member.
    members: HashMap<Digest, String>,
}

impl LegacyArchive {
    fn open(store: TarStore, label: String, wanted: Option<&str>) -> Result<Self, SourceError> {
        let malformed = |detail: String| SourceError::Malformed {
            what: label.clone(),
            detail,
        };
        let listing = store.read_small("manifest.json")?;
        let images: Vec<SavedImage> = serde_json::from_slice(&listing)
            .map_err(|err| malformed(format!("manifest.json: {err}")))?;
        let count = images.len();
        let mut matching = images.into_iter().filter(|image| match wanted {
            Some(name) => image
                .repo_tags
                .as_ref()
                .is_some_and(|tags| tags.iter().any(|tag| same_name(tag, name))),
            None => true,
        });
        let image = match (matching.next(), matching.next()) {
            (Some(image), None) => image,
            (None, _) => {
                return Err(SourceError::NotFound {
                    what: format!("{label}: no image named {:?}", wanted.unwrap_or("")),
                });
            }
            (Some(_), Some(_)) => {
                return Err(malformed(format!(
                    "holds {count} images: name one with docker-archive:FILE:NAME:TAG"
                )));
            }
        };
        let config_bytes = store.read_small(&image.config)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|err| malformed(format!("{}: {err}", image.config)))?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != image.layers.len() {
            return Err(malformed(format!(
                "{} layers but {} diff_ids in the config",
                image.layers.len(),
                diff_ids.len()
            )));
        }
        let config_digest = Digest::of(&config_bytes);
        let mut members = HashMap::from([(config_digest.clone(), image.config.clone())]);
        let mut layers = Vec::new();
        for (name, diff_id) in image.layers.iter().zip(diff_ids) {
            let size = store
                .size(name)
                .ok_or_else(|| malformed(format!("layer {name} is not in the archive")))?;
            members.insert(diff_id.clone(), name.clone());
            layers.push(descriptor(media_type::OCI_LAYER_TAR, diff_id.clone(), size));
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: descriptor(
                media_type::OCI_CONFIG,
                config_digest,
                config_bytes.len() as u64,
            ),
            layers,
        };
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        Ok(Self {
            store,
            label,
            manifest: Fetched {
                media_type: media_type::OCI_MANIFEST.into(),
                digest: Digest::of(&bytes),
                bytes,
            },
            members,
        })
    }
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest,
        size,
        platform: None,
        annotations: None,
    }
}

impl ImageSource for LegacyArchive {
    fn root(&self) -> Result<Fetched, SourceError> {
        Ok(self.manifest.clone())
    }

    fn manifest(&self, descriptor: &Descriptor) -> Result<Fetched, SourceError> {
        Err(SourceError::NotFound {
            what: format!("manifest {} in {}", descriptor.digest, self.label),
        })
    }

    fn blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        let name = self
            .members
            .get(&descriptor.digest)
            .ok_or_else(|| SourceError::NotFound {
                what: format!("blob {} in {}", descriptor.digest, self.label),
            })?;
        self.store.open(name)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_compare_as_docker_expands_them() {
        assert!(super::same_name("docker.io/library/img:t", "img:t"));
        assert!(super::same_name("docker.io/org/img:t", "org/img:t"));
        assert!(super::same_name("r.example/a:1", "r.example/a:1"));
        assert!(!super::same_name("r.example/a:1", "a:1"));
    }
}
