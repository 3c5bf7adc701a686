//! From a source's root manifest or index to one verified image: the
//! manifest for the wanted platform and its parsed config, every byte
//! checked against its digest.
//!
//! The platform choice itself ([`choose_platform`]) is a pure function.

use std::io::Read;

use crate::image::{Descriptor, Digest, ImageConfig, Index, Manifest, Platform, media_type};
use crate::source::store::MAX_METADATA;
use crate::source::{Fetched, ImageSource};
use crate::unpack::{ResolvedImage, UnpackError, UnpackOptions};
use crate::verify::{Mismatch, VerifyingReader};

/// Annotation BuildKit puts on the attestation manifests of an index.
const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Indexes pointing at indexes are legal; more than this is a loop.
const MAX_NESTING: usize = 4;

/// See [`crate::unpack::resolve`].
pub fn resolve(
    source: &dyn ImageSource,
    options: &UnpackOptions,
) -> Result<ResolvedImage, UnpackError> {
    let mut fetched = source.root()?;
    for _ in 0..MAX_NESTING {
        verify_fetched(&fetched, "root manifest")?;
        match Kind::of(&fetched)? {
            Kind::Manifest => return finish(source, fetched),
            Kind::Index => {
                let index: Index = parse(&fetched.bytes, "image index")?;
                let chosen = choose_platform(&index.manifests, &options.platform)
                    .ok_or_else(|| UnpackError::NoMatchingPlatform {
                        platform: platform_text(&options.platform),
                    })?
                    .clone();
                fetched = source.manifest(&chosen)?;
                if fetched.digest != chosen.digest {
                    return Err(mismatch("manifest", &chosen.digest, &fetched.digest));
                }
            }
        }
    }
    Err(invalid("image index", "indexes nested too deeply"))
}

/// `os/arch[/variant]`.
pub fn platform_text(platform: &Platform) -> String {
    match &platform.variant {
        Some(variant) => format!("{}/{}/{variant}", platform.os, platform.architecture),
        None => format!("{}/{}", platform.os, platform.architecture),
    }
}

/// The index entry for `wanted`: attestation manifests (BuildKit's
/// annotation, or platform `unknown/unknown`) are never chosen; a wanted
/// variant must match, and without one an entry without a variant is
/// preferred, then the first one of the right os/architecture.
pub fn choose_platform<'a>(
    manifests: &'a [Descriptor],
    wanted: &Platform,
) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            let attestation = d
                .annotations
                .as_ref()
                .and_then(|a| a.get(REFERENCE_TYPE))
                .is_some_and(|kind| kind == "attestation-manifest");
            let unknown = d
                .platform
                .as_ref()
                .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
            !attestation && !unknown
        })
        .collect();
    let matching = |d: &&&Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == wanted.os && p.architecture == wanted.architecture)
    };
    match &wanted.variant {
        Some(variant) => candidates
            .iter()
            .filter(matching)
            .copied()
            .find(|d| d.platform.as_ref().and_then(|p| p.variant.as_ref()) == Some(variant)),
        None => candidates
            .iter()
            .filter(matching)
            .copied()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
            .or_else(|| candidates.iter().find(matching).copied()),
    }
}

enum Kind {
    Manifest,
    Index,
}

impl Kind {
    fn of(fetched: &Fetched) -> Result<Self, UnpackError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            media_type: Option<String>,
            manifests: Option<serde::de::IgnoredAny>,
        }
        let probe: Probe = parse(&fetched.bytes, "manifest")?;
        let declared = match fetched.media_type.as_str() {
            "" => probe.media_type.unwrap_or_default(),
            given => given.to_owned(),
        };
        match declared.as_str() {
            media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => Ok(Self::Manifest),
            media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST => Ok(Self::Index),
            "" if probe.manifests.is_some() => Ok(Self::Index),
            "" => Ok(Self::Manifest),
            other => Err(invalid(
                "manifest",
                &format!("unsupported media type {other:?} (schema 1 or not an image)"),
            )),
        }
    }
}

fn finish(source: &dyn ImageSource, fetched: Fetched) -> Result<ResolvedImage, UnpackError> {
    let manifest: Manifest = parse(&fetched.bytes, "image manifest")?;
    if manifest.config.size > MAX_METADATA {
        return Err(invalid("image config", "too large"));
    }
    let what = format!("config {}", manifest.config.digest);
    let mut reader = VerifyingReader::new(
        source.blob(&manifest.config)?,
        manifest.config.digest.clone(),
        Some(manifest.config.size),
        what.clone(),
    );
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|err| match Mismatch::find(&err) {
            Some(Mismatch::Digest {
                expected, actual, ..
            }) => mismatch(&what, expected, actual),
            _ => UnpackError::Io { what, source: err },
        })?;
    let config: ImageConfig = parse(&bytes, "image config")?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(invalid(
            "image config",
            &format!(
                "{} diff_ids for {} layers",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            ),
        ));
    }
    Ok(ResolvedImage {
        manifest_digest: fetched.digest,
        manifest,
        config,
    })
}

fn verify_fetched(fetched: &Fetched, what: &str) -> Result<(), UnpackError> {
    let actual = Digest::of(&fetched.bytes);
    if actual != fetched.digest {
        return Err(mismatch(what, &fetched.digest, &actual));
    }
    Ok(())
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, UnpackError> {
    serde_json::from_slice(bytes).map_err(|err| invalid(what, &err.to_string()))
}

fn mismatch(what: &str, expected: &Digest, actual: &Digest) -> UnpackError {
    UnpackError::DigestMismatch {
        what: what.to_owned(),
        expected: expected.clone(),
        actual: actual.clone(),
    }
}

fn invalid(what: &str, detail: &str) -> UnpackError {
    UnpackError::Invalid {
        what: what.to_owned(),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn entry(n: u8, os: &str, arch: &str, variant: Option<&str>, kind: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: format!("sha256:{}", format!("{n:02x}").repeat(32))
                .parse()
                .unwrap(),
            size: 1,
            platform: Some(Platform {
                os: os.into(),
                architecture: arch.into(),
                variant: variant.map(Into::into),
            }),
            annotations: kind.map(|k| BTreeMap::from([(REFERENCE_TYPE.to_owned(), k.to_owned())])),
        }
    }

    fn want(arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    #[test]
    fn attestations_are_skipped_and_variants_respected() {
        let index = [
            entry(1, "unknown", "unknown", None, None),
            entry(2, "linux", "amd64", None, Some("attestation-manifest")),
            entry(3, "linux", "arm", Some("v6"), None),
            entry(4, "linux", "arm", Some("v7"), None),
            entry(5, "linux", "amd64", None, None),
        ];
        assert_eq!(
            choose_platform(&index, &want("amd64", None)),
            Some(&index[4])
        );
        assert_eq!(
            choose_platform(&index, &want("arm", Some("v7"))),
            Some(&index[3])
        );
        assert_eq!(choose_platform(&index, &want("arm", None)), Some(&index[2]));
        assert_eq!(choose_platform(&index, &want("arm", Some("v8"))), None);
        assert_eq!(choose_platform(&index, &want("s390x", None)), None);
        assert_eq!(choose_platform(&index[..2], &want("amd64", None)), None);
    }
}
