//! `docker://` images: the registry v2 HTTP API as an [`ImageSource`].
//!
//! Manifests come from `GET /v2/<repo>/manifests/<ref>` (OCI and Docker
//! media types, index and image), blobs from `GET /v2/<repo>/blobs/<digest>`.
//! The parts: [`challenge`] and `auth` (anonymous, basic, bearer tokens),
//! [`credentials`] (docker `config.json`), `client` (retries, redirects,
//! status mapping), `blob` (resumed downloads), [`retry`] (backoff),
//! [`args`] (the command-line flags).
//! Digests are checked by the caller, as for every source.

pub mod args;
mod auth;
mod blob;
pub mod challenge;
mod client;
pub mod credentials;
pub mod retry;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use args::RegistryArgs;
pub use credentials::Credentials;
pub use retry::RetryPolicy;

use self::auth::Authenticator;
use self::blob::BlobReader;
use self::client::{Client, Get, Http};
use self::credentials::FoundCredentials;
use super::{Fetched, ImageSource, RegistryReference, SourceError};
use crate::image::{Descriptor, Digest, media_type};

/// The manifest media types asked for, most specific first.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest read (containerd's limit too): a bound on memory.
const MANIFEST_LIMIT: u64 = 4 << 20;

/// How to reach and authenticate against a registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registries (`host[:port]`, as in the image reference) reached over
    /// plain http although they are not on loopback (loopback and
    /// `localhost` always are), like docker's `insecure-registries`.
    pub insecure_registries: Vec<String>,
    /// The auth file to read credentials from, instead of the usual search
    /// (`$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
    /// `~/.docker/config.json`, `$XDG_RUNTIME_DIR/containers/auth.json`).
    pub auth_file: Option<PathBuf>,
    /// Credentials to use whatever the auth files say.
    pub credentials: Option<Credentials>,
    pub retry: RetryPolicy,
    /// Bound on establishing a connection (TLS included).
    pub connect_timeout: Duration,
    /// Bound on one read from a connection: a stalled download is broken
    /// off and resumed after this long.
    pub read_timeout: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            auth_file: None,
            credentials: None,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// One image in a registry, read over its v2 API.
pub struct RegistrySource {
    client: Arc<Client>,
    repository: String,
    reference: RegistryReference,
    /// `docker://registry/repo:tag`, for messages.
    name: String,
}

impl RegistrySource {
    /// Prepares access to `registry/repository` at `reference`; reads the
    /// auth files, makes no request yet.
    pub fn new(
        registry: &str,
        repository: &str,
        reference: RegistryReference,
        options: RegistryOptions,
    ) -> Result<Self, SourceError> {
        let (credentials, searched) = find_credentials(registry, &options)?;
        let insecure = options
            .insecure_registries
            .iter()
            .any(|insecure| insecure.eq_ignore_ascii_case(registry));
        let auth = Authenticator::new(registry, repository, credentials, searched, insecure);
        let http = Http::new(options.retry, options.connect_timeout, options.read_timeout);
        let client = Client::new(http, client::origin(registry, insecure), auth);
        let name = match &reference {
            RegistryReference::Tag(tag) => format!("docker://{registry}/{repository}:{tag}"),
            RegistryReference::Digest(digest) => {
                format!("docker://{registry}/{repository}@{digest}")
            }
        };
        Ok(Self {
            client: Arc::new(client),
            repository: repository.to_owned(),
            reference,
            name,
        })
    }

    /// `GET /v2/<repo>/manifests/<reference>`: the bytes, the media type
    /// the registry names and the digest it claims (or, for a tag without
    /// `Docker-Content-Digest`, the digest of the bytes).
    fn fetch_manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Fetched, SourceError> {
        let what = format!("{}: manifest {reference}", self.name);
        let path = format!("/v2/{}/manifests/{reference}", self.repository);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut response = self.client.get(&Get {
                path: &path,
                accept: Some(MANIFEST_ACCEPT),
                range_from: None,
                what: &what,
            })?;
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header("content-type").unwrap_or_default();
            let claimed = header("docker-content-digest");
            let bytes = match response
                .body_mut()
                .with_config()
                .limit(MANIFEST_LIMIT)
                .read_to_vec()
            {
                Ok(bytes) => bytes,
                Err(ureq::Error::BodyExceedsLimit(_)) => {
                    return Err(SourceError::Malformed {
                        what,
                        detail: format!("larger than {MANIFEST_LIMIT} bytes"),
                    });
                }
                Err(error) if self.client.http().retry().allows_another(attempt) => {
                    tracing::warn!(what, %error, "manifest read broke off; trying again");
                    std::thread::sleep(self.client.http().retry().backoff(attempt));
                    continue;
                }
                Err(error) => {
                    return Err(SourceError::Transport {
                        what,
                        detail: error.to_string(),
                    });
                }
            };
            let Some(media_type) = manifest_media_type(&content_type) else {
                return Err(SourceError::Malformed {
                    what,
                    detail: "a Docker schema 1 manifest: not supported (push the image again with a current client)".into(),
                });
            };
            let digest = match (expected, claimed.and_then(|text| text.parse().ok())) {
                (Some(expected), _) => expected.clone(),
                (None, Some(claimed)) => claimed,
                (None, None) => Digest::of(&bytes),
            };
            return Ok(Fetched {
                media_type,
                digest,
                bytes,
            });
        }
    }
}

impl ImageSource for RegistrySource {
    fn root(&self) -> Result<Fetched, SourceError> {
        match &self.reference {
            RegistryReference::Tag(tag) => self.fetch_manifest(tag, None),
            RegistryReference::Digest(digest) => {
                self.fetch_manifest(&digest.to_string(), Some(digest))
            }
        }
    }

    fn manifest(&self, descriptor: &Descriptor) -> Result<Fetched, SourceError> {
        let mut fetched =
            self.fetch_manifest(&descriptor.digest.to_string(), Some(&descriptor.digest))?;
        if fetched.media_type.is_empty() {
            fetched.media_type.clone_from(&descriptor.media_type);
        }
        Ok(fetched)
    }

    fn blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        let kind = match descriptor.media_type.as_str() {
            media_type::OCI_CONFIG | media_type::DOCKER_CONFIG => "config",
            _ => "blob",
        };
        let reader = BlobReader::open(
            Arc::clone(&self.client),
            format!("/v2/{}/blobs/{}", self.repository, descriptor.digest),
            format!("{}: {kind} {}", self.name, descriptor.digest),
            descriptor.size,
        )?;
        Ok(Box::new(reader))
    }
}

/// The media type to report for a manifest answered with `content_type`:
/// one of the four asked for, or empty (then the JSON's own `mediaType`
/// decides: some registries and mirrors say `application/json`);
/// `None` for Docker schema 1, which is not supported.
fn manifest_media_type(content_type: &str) -> Option<String> {
    const KNOWN: [&str; 4] = [
        media_type::OCI_INDEX,
        media_type::OCI_MANIFEST,
        media_type::DOCKER_MANIFEST_LIST,
        media_type::DOCKER_MANIFEST,
    ];
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if essence.starts_with("application/vnd.docker.distribution.manifest.v1") {
        return None;
    }
    let known = KNOWN
        .iter()
        .find(|known| known.eq_ignore_ascii_case(essence));
    Some(known.map_or_else(String::new, |known| (*known).to_owned()))
}

/// The credentials to use and the files searched for them.
fn find_credentials(
    registry: &str,
    options: &RegistryOptions,
) -> Result<(Option<FoundCredentials>, Vec<PathBuf>), SourceError> {
    if let Some(credentials) = &options.credentials {
        let found = FoundCredentials {
            credentials: credentials.clone(),
            file: "the given credentials".into(),
        };
        return Ok((Some(found), Vec::new()));
    }
    let files = match &options.auth_file {
        Some(file) => {
            if !file.exists() {
                return Err(SourceError::Io {
                    what: format!("registry auth file {}", file.display()),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            vec![file.clone()]
        }
        None => credentials::default_auth_files(|name| std::env::var_os(name)),
    };
    let found = credentials::find(registry, &files).map_err(|error| SourceError::Malformed {
        what: format!("registry auth file {}", error.file.display()),
        detail: error.reason,
    })?;
    Ok((found, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_media_types_are_trusted_only_when_known() {
        assert_eq!(
            manifest_media_type("application/vnd.oci.image.index.v1+json").as_deref(),
            Some(media_type::OCI_INDEX)
        );
        assert_eq!(
            manifest_media_type(
                "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"
            )
            .as_deref(),
            Some(media_type::DOCKER_MANIFEST)
        );
        assert_eq!(manifest_media_type("application/json").as_deref(), Some(""));
        assert_eq!(manifest_media_type("").as_deref(), Some(""));
        assert_eq!(
            manifest_media_type("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            None
        );
    }
}
