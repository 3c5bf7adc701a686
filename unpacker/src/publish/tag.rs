//! Tag names: the readable links beside the content-addressed images
//! (`ghcr.io/org/image:pr-12`), validated so a tag can never name a path
//! outside the tags directory, and derived from a source when not given.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::source::{RegistryReference, SourceRef};

/// Longest tag accepted, in bytes.
const MAX_LEN: usize = 255;

/// A tag: `/`-separated components of `[A-Za-z0-9._:@+-]`, none empty,
/// `.` or `..`, none starting with `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagName(String);

/// A tag that would not be a safe relative path.
#[derive(Debug, thiserror::Error)]
#[error("tag {tag:?}: {reason}")]
pub struct BadTag {
    pub tag: String,
    pub reason: &'static str,
}

impl FromStr for TagName {
    type Err = BadTag;

    fn from_str(text: &str) -> Result<Self, BadTag> {
        let bad = |reason| BadTag {
            tag: text.to_owned(),
            reason,
        };
        if text.is_empty() || text.len() > MAX_LEN {
            return Err(bad("must be 1 to 255 bytes"));
        }
        for component in text.split('/') {
            if component.is_empty() {
                return Err(bad("empty path component"));
            }
            if component.starts_with('.') {
                return Err(bad("a component starts with '.'"));
            }
            if !component
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@+-".contains(&b))
            {
                return Err(bad("letters, digits and . _ : @ + - / only"));
            }
        }
        Ok(Self(text.to_owned()))
    }
}

impl TagName {
    /// The tag a request for `source` gets when it names none:
    /// `registry/repository:tag` for `docker://`, `<transport>/<file
    /// name>:<tag>` for local sources. `None` for digest references (the
    /// digest is the address already).
    pub fn derived(source: &SourceRef) -> Option<Self> {
        let text = match source {
            SourceRef::Docker {
                reference: RegistryReference::Digest(_),
                ..
            } => return None,
            SourceRef::Docker {
                registry,
                repository,
                reference: RegistryReference::Tag(tag),
            } => format!("{registry}/{repository}:{tag}"),
            SourceRef::OciLayout { dir, tag } => {
                format!(
                    "oci/{}:{}",
                    file_name(dir)?,
                    tag.as_deref().unwrap_or("latest")
                )
            }
            SourceRef::OciArchive { file, tag } => format!(
                "oci-archive/{}:{}",
                file_name(file)?,
                tag.as_deref().unwrap_or("latest")
            ),
            SourceRef::DockerArchive { file } => {
                format!("docker-archive/{}:latest", file_name(file)?)
            }
        };
        text.parse().ok()
    }

    /// The tag as a relative path under the tags directory.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }

    /// Directories between the tags directory and the link, plus one for
    /// the tags directory itself.
    pub fn depth(&self) -> usize {
        self.0.matches('/').count() + 1
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn file_name(path: &Path) -> Option<String> {
    let name = path.file_stem()?.to_string_lossy();
    let name = name.trim_start_matches('.');
    (!name.is_empty()).then(|| name.to_owned())
}

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<TagName> for PathBuf {
    fn from(tag: TagName) -> PathBuf {
        PathBuf::from(tag.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_that_leave_the_tags_directory_are_refused() {
        for bad in [
            "",
            "../x",
            "a/../b",
            "/abs",
            "a//b",
            "a/",
            ".hidden",
            "a/.b",
            "sp ace",
            "new\nline",
            &"x".repeat(256),
        ] {
            assert!(bad.parse::<TagName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn registry_style_tags_are_accepted() {
        for good in [
            "ghcr.io/org/img:pr-12",
            "127.0.0.1:5000/a/b:latest",
            "x@sha256:00",
            "img+v1",
        ] {
            assert!(good.parse::<TagName>().is_ok(), "{good:?}");
        }
    }

    #[test]
    fn tags_derive_from_sources() {
        let derive = |text: &str| TagName::derived(&text.parse().unwrap()).map(|t| t.0);
        assert_eq!(
            derive("docker://ghcr.io/org/img:pr-1").as_deref(),
            Some("ghcr.io/org/img:pr-1")
        );
        assert_eq!(
            derive("docker://debian").as_deref(),
            Some("docker.io/library/debian:latest")
        );
        assert_eq!(
            derive(&format!("docker://r.example/a@sha256:{}", "0".repeat(64))),
            None
        );
        assert_eq!(
            derive("oci:/srv/layouts/tool:v2").as_deref(),
            Some("oci/tool:v2")
        );
        assert_eq!(
            derive("oci-archive:/tmp/img.tar").as_deref(),
            Some("oci-archive/img:latest")
        );
        assert_eq!(
            derive("docker-archive:/tmp/saved.tar").as_deref(),
            Some("docker-archive/saved:latest")
        );
    }

    #[test]
    fn depth_counts_the_tags_directory() {
        assert_eq!("a:1".parse::<TagName>().unwrap().depth(), 1);
        assert_eq!("r/o/a:1".parse::<TagName>().unwrap().depth(), 3);
    }
}
