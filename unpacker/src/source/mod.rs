//! Where images come from: skopeo's transport syntax parsed into a
//! [`SourceRef`], and the [`ImageSource`] trait every transport implements.
//!
//! A source hands out raw bytes only; digests are checked by the caller
//! while it streams them (see `verify`), so no transport can skip the check.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::str::FromStr;

use crate::image::{Descriptor, Digest};

pub mod docker_archive;
pub mod layout;
pub mod store;

/// Opens the source `reference` names. Local transports are read in place;
/// `docker://` comes from `source::registry`.
pub fn open_source(reference: &SourceRef) -> Result<Box<dyn ImageSource>, SourceError> {
    match reference {
        SourceRef::OciLayout { dir, tag } => Ok(Box::new(layout::LayoutSource::open(
            store::DirStore::new(dir),
            format!("oci:{}", dir.display()),
            tag.as_deref(),
        )?)),
        SourceRef::OciArchive { file, tag } => Ok(Box::new(layout::LayoutSource::open(
            store::TarStore::index(file)?,
            format!("oci-archive:{}", file.display()),
            tag.as_deref(),
        )?)),
        SourceRef::DockerArchive { file } => docker_archive::open(file),
        SourceRef::Docker { .. } => Err(SourceError::Transport {
            what: reference.to_string(),
            detail: "docker:// is provided by source::registry, not in this build".into(),
        }),
    }
}

/// An image reference in skopeo's transport syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    /// `docker://REGISTRY/REPO[:TAG|@DIGEST]`; Docker Hub's short names
    /// (`docker://debian:12`) expand as docker does.
    Docker {
        registry: String,
        repository: String,
        reference: RegistryReference,
    },
    /// `oci:DIR[:TAG]`: an OCI image layout directory.
    OciLayout { dir: PathBuf, tag: Option<String> },
    /// `oci-archive:FILE[:TAG]`: a tar of an OCI image layout.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// `docker-archive:FILE`: `docker save` output, legacy or OCI-in-tar.
    DockerArchive { file: PathBuf },
}

/// The tag or digest part of a `docker://` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryReference {
    Tag(String),
    Digest(Digest),
}

/// A source string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("image source {text:?}: {reason}")]
pub struct BadSourceRef {
    pub text: String,
    pub reason: String,
}

impl FromStr for SourceRef {
    type Err = BadSourceRef;

    fn from_str(text: &str) -> Result<Self, BadSourceRef> {
        let bad = |reason: &str| BadSourceRef {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = text.strip_prefix("docker://") {
            return parse_docker(rest).map_err(|reason| bad(&reason));
        }
        let (transport, rest) = text.split_once(':').ok_or_else(|| {
            bad("expected docker://, oci:, oci-archive: or docker-archive: before the location")
        })?;
        if rest.is_empty() {
            return Err(bad("the path after the transport is empty"));
        }
        let (path, tag) = match rest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') && !path.is_empty() => {
                (path, Some(tag.to_owned()))
            }
            _ => (rest, None),
        };
        match transport {
            "oci" => Ok(Self::OciLayout {
                dir: path.into(),
                tag,
            }),
            "oci-archive" => Ok(Self::OciArchive {
                file: path.into(),
                tag,
            }),
            // docker-archive's optional suffix names an image *in* the
            // archive; the whole rest is the file when there is none.
            "docker-archive" => Ok(Self::DockerArchive { file: rest.into() }),
            other => Err(bad(&format!(
                "unknown transport {other:?}: expected docker://, oci:, oci-archive: or docker-archive:"
            ))),
        }
    }
}

fn parse_docker(rest: &str) -> Result<SourceRef, String> {
    if rest.is_empty() {
        return Err("nothing after docker://".into());
    }
    let (name, reference) = if let Some((name, digest)) = rest.split_once('@') {
        let digest = digest.parse::<Digest>().map_err(|e| e.to_string())?;
        (name, RegistryReference::Digest(digest))
    } else {
        match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => {
                (name, RegistryReference::Tag(tag.to_owned()))
            }
            _ => (rest, RegistryReference::Tag("latest".to_owned())),
        }
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), path.to_owned())
        }
        Some(_) => ("docker.io".to_owned(), name.to_owned()),
        None => ("docker.io".to_owned(), format!("library/{name}")),
    };
    if repository.is_empty()
        || !repository
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
    {
        return Err(format!(
            "repository {repository:?}: lowercase letters, digits, '.', '_', '-' and '/' only"
        ));
    }
    Ok(SourceRef::Docker {
        registry,
        repository,
        reference,
    })
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Docker {
                registry,
                repository,
                reference: RegistryReference::Tag(tag),
            } => write!(f, "docker://{registry}/{repository}:{tag}"),
            Self::Docker {
                registry,
                repository,
                reference: RegistryReference::Digest(digest),
            } => write!(f, "docker://{registry}/{repository}@{digest}"),
            Self::OciLayout { dir, tag } | Self::OciArchive { file: dir, tag } => {
                let transport = if matches!(self, Self::OciLayout { .. }) {
                    "oci"
                } else {
                    "oci-archive"
                };
                write!(f, "{transport}:{}", dir.display())?;
                match tag {
                    Some(tag) => write!(f, ":{tag}"),
                    None => Ok(()),
                }
            }
            Self::DockerArchive { file } => write!(f, "docker-archive:{}", file.display()),
        }
    }
}

/// A manifest or index as fetched: its bytes are what its digest covers.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// From the registry's `Content-Type` or the index descriptor; may be
    /// empty when the source does not say (then the JSON's `mediaType`).
    pub media_type: String,
    /// The digest of `bytes` as the source claims it; the caller verifies.
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// Why a source could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{what}: access denied: {detail}")]
    Unauthorized { what: String, detail: String },
    #[error("{what}: {detail}")]
    Malformed { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {detail}")]
    Transport { what: String, detail: String },
}

/// One transport's access to an image's manifests and blobs.
///
/// Blocking by design: unpacking is file-system work on threads, and the
/// layers of one image are read concurrently, so sources are `Sync`.
pub trait ImageSource: Send + Sync {
    /// The manifest or index the reference names (its tag, digest, or the
    /// only image in the archive).
    fn root(&self) -> Result<Fetched, SourceError>;

    /// A manifest an index points at.
    fn manifest(&self, descriptor: &Descriptor) -> Result<Fetched, SourceError>;

    /// A blob's raw bytes (still compressed), unverified.
    fn blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(registry: &str, repository: &str, tag: &str) -> SourceRef {
        SourceRef::Docker {
            registry: registry.into(),
            repository: repository.into(),
            reference: RegistryReference::Tag(tag.into()),
        }
    }

    #[test]
    fn docker_references_expand_like_docker() {
        let cases = [
            (
                "docker://debian",
                docker("docker.io", "library/debian", "latest"),
            ),
            (
                "docker://debian:12",
                docker("docker.io", "library/debian", "12"),
            ),
            ("docker://org/img:1", docker("docker.io", "org/img", "1")),
            (
                "docker://ghcr.io/org/img:pr-1",
                docker("ghcr.io", "org/img", "pr-1"),
            ),
            (
                "docker://127.0.0.1:5000/a/b",
                docker("127.0.0.1:5000", "a/b", "latest"),
            ),
            ("docker://localhost/x:y", docker("localhost", "x", "y")),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<SourceRef>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn docker_digest_references_parse() {
        let digest = format!("sha256:{}", "0".repeat(64));
        let parsed: SourceRef = format!("docker://r.example/a@{digest}").parse().unwrap();
        assert_eq!(
            parsed,
            SourceRef::Docker {
                registry: "r.example".into(),
                repository: "a".into(),
                reference: RegistryReference::Digest(digest.parse().unwrap()),
            }
        );
        assert_eq!(parsed.to_string(), format!("docker://r.example/a@{digest}"));
    }

    #[test]
    fn local_transports_split_off_the_tag() {
        assert_eq!(
            "oci:/srv/layout:v1".parse::<SourceRef>().unwrap(),
            SourceRef::OciLayout {
                dir: "/srv/layout".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            "oci-archive:img.tar".parse::<SourceRef>().unwrap(),
            SourceRef::OciArchive {
                file: "img.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            "docker-archive:/tmp/a.tar".parse::<SourceRef>().unwrap(),
            SourceRef::DockerArchive {
                file: "/tmp/a.tar".into()
            }
        );
    }

    #[test]
    fn bad_sources_say_why() {
        for (text, fragment) in [
            ("ftp://x", "unknown transport"),
            ("docker://", "nothing after"),
            ("docker://Upper/Case", "lowercase"),
            ("docker://a@sha256:12", "not a sha256 digest"),
            ("oci:", "empty"),
            ("/just/a/path", "expected docker://"),
        ] {
            let error = text.parse::<SourceRef>().unwrap_err().to_string();
            assert!(error.contains(fragment), "{text}: {error}");
        }
    }
}
