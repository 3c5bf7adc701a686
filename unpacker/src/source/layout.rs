//! `oci:DIR[:TAG]` and `oci-archive:FILE[:TAG]`: an OCI image layout
//! (`index.json`, `blobs/<alg>/<hex>`), in a directory or inside a tar.
//! Docker 25+ `docker save` archives carry one too.

use std::io::Read;

use super::store::Store;
use super::{Fetched, ImageSource, SourceError};
use crate::image::{Descriptor, Index};

/// The annotation an OCI layout's `index.json` names tags with.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image in an OCI layout.
pub struct LayoutSource<S> {
    store: S,
    /// Where the layout is, for messages.
    label: String,
    /// The index entry the reference names.
    root: Descriptor,
}

impl<S: Store> LayoutSource<S> {
    /// Finds `tag` (or the only image, when `tag` is `None`) in the layout.
    pub fn open(store: S, label: String, tag: Option<&str>) -> Result<Self, SourceError> {
        let what = format!("{label}/index.json");
        let bytes = store.read_small("index.json")?;
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|err| SourceError::Malformed {
                what: what.clone(),
                detail: err.to_string(),
            })?;
        let root = pick(&index.manifests, tag).map_err(|detail| match tag {
            Some(_) => SourceError::NotFound {
                what: format!("{label}: {detail}"),
            },
            None => SourceError::Malformed {
                what: label.clone(),
                detail,
            },
        })?;
        Ok(Self { store, label, root })
    }
}

/// The descriptor `tag` names, or the only one when there is no tag.
fn pick(manifests: &[Descriptor], tag: Option<&str>) -> Result<Descriptor, String> {
    match tag {
        Some(tag) => manifests
            .iter()
            .find(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .is_some_and(|name| name == tag)
            })
            .cloned()
            .ok_or_else(|| format!("no image tagged {tag:?}")),
        None => match manifests {
            [only] => Ok(only.clone()),
            [] => Err("the layout holds no image".into()),
            _ => Err(format!(
                "the layout holds {} images: name one with :TAG",
                manifests.len()
            )),
        },
    }
}

fn blob_name(descriptor: &Descriptor) -> String {
    format!("blobs/sha256/{}", descriptor.digest.hex())
}

impl<S: Store> LayoutSource<S> {
    fn fetch(&self, descriptor: &Descriptor) -> Result<Fetched, SourceError> {
        let bytes = self.store.read_small(&blob_name(descriptor))?;
        Ok(Fetched {
            media_type: descriptor.media_type.clone(),
            digest: descriptor.digest.clone(),
            bytes,
        })
    }
}

impl<S: Store> ImageSource for LayoutSource<S> {
    fn root(&self) -> Result<Fetched, SourceError> {
        self.fetch(&self.root)
    }

    fn manifest(&self, descriptor: &Descriptor) -> Result<Fetched, SourceError> {
        self.fetch(descriptor)
    }

    fn blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        self.store
            .open(&blob_name(descriptor))
            .map_err(|err| match err {
                SourceError::NotFound { .. } => SourceError::NotFound {
                    what: format!("blob {} in {}", descriptor.digest, self.label),
                },
                other => other,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(n: u8, tag: Option<&str>) -> Descriptor {
        let digest = format!("sha256:{}", format!("{n:02x}").repeat(32));
        Descriptor {
            media_type: crate::image::media_type::OCI_MANIFEST.into(),
            digest: digest.parse().unwrap(),
            size: 1,
            platform: None,
            annotations: tag.map(|t| [(REF_NAME.to_owned(), t.to_owned())].into()),
        }
    }

    #[test]
    fn a_tag_picks_its_image_and_no_tag_needs_a_single_image() {
        let two = [descriptor(1, Some("a")), descriptor(2, Some("b"))];
        assert_eq!(pick(&two, Some("b")).unwrap(), two[1]);
        assert!(
            pick(&two, Some("c"))
                .unwrap_err()
                .contains("no image tagged")
        );
        assert!(pick(&two, None).unwrap_err().contains("2 images"));
        assert_eq!(pick(&two[..1], None).unwrap(), two[0]);
        assert!(pick(&[], None).unwrap_err().contains("no image"));
    }
}
