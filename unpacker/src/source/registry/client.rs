//! HTTP to a registry: retries of connection errors, 429 and 5xx
//! ([`Http`]), and on top of it ([`Client`]) the registry's own origin,
//! authentication challenges and redirects, with 401/403/404 mapped to
//! [`SourceError`]s that say what was refused or missing.
//!
//! Redirects are followed here rather than by the HTTP library so that the
//! `Authorization` header only ever goes to the registry's own origin (S3
//! and CDN blob URLs carry their own signature in the query).

use std::net::IpAddr;
use std::thread;
use std::time::Duration;

use secrecy::ExposeSecret;
use ureq::http::Response;
use ureq::{Body, RequestBuilder, typestate::WithoutBody};

use super::auth::Authenticator;
use super::challenge;
use super::retry::{RetryPolicy, is_retryable_status};
use crate::source::SourceError;

/// Redirects followed for one request before giving up.
const MAX_REDIRECTS: u32 = 5;

/// The HTTP agent and the retry policy every request goes through.
pub(crate) struct Http {
    agent: ureq::Agent,
    retry: RetryPolicy,
}

impl Http {
    pub fn new(retry: RetryPolicy, connect_timeout: Duration, read_timeout: Duration) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("gha-unpacker/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(connect_timeout))
            .timeout_per_read(Some(read_timeout))
            .tls_config(tls)
            .build()
            .new_agent();
        Self { agent, retry }
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sends the request `build` makes, again after connection errors and
    /// 429/5xx answers, within the retry policy; returns the first other
    /// response, whatever its status.
    pub fn send(
        &self,
        what: &str,
        build: impl Fn() -> RequestBuilder<WithoutBody>,
    ) -> Result<Response<Body>, SourceError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (failure, asked_wait) = match build().call() {
                Ok(response) if !is_retryable_status(response.status().as_u16()) => {
                    return Ok(response);
                }
                Ok(response) => {
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|value| value.to_str().ok());
                    (
                        format!("HTTP {}", response.status().as_u16()),
                        self.retry.retry_after(retry_after),
                    )
                }
                Err(error) if is_retryable_error(&error) => (error.to_string(), None),
                Err(error) => {
                    return Err(SourceError::Transport {
                        what: what.to_owned(),
                        detail: error.to_string(),
                    });
                }
            };
            if !self.retry.allows_another(attempt) {
                return Err(SourceError::Transport {
                    what: what.to_owned(),
                    detail: format!("{failure} (gave up after {attempt} attempts)"),
                });
            }
            let wait = asked_wait.unwrap_or_else(|| self.retry.backoff(attempt));
            tracing::warn!(
                what,
                attempt,
                error = %failure,
                wait_ms = wait.as_millis() as u64,
                "registry request failed; trying again"
            );
            thread::sleep(wait);
        }
    }
}

/// Transport failures worth another try: the network, not the request.
fn is_retryable_error(error: &ureq::Error) -> bool {
    matches!(
        error,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    )
}

/// One registry request: the path under the registry's origin and what to
/// ask for.
pub(crate) struct Get<'a> {
    /// `/v2/...`.
    pub path: &'a str,
    pub accept: Option<&'a str>,
    /// Ask for the bytes from this offset on (`Range: bytes=N-`).
    pub range_from: Option<u64>,
    /// Names the object in errors and logs.
    pub what: &'a str,
}

/// A registry: its origin, authentication and HTTP.
pub(crate) struct Client {
    http: Http,
    /// `scheme://host[:port]`, without a trailing slash.
    origin: String,
    auth: Authenticator,
}

impl Client {
    pub fn new(http: Http, origin: String, auth: Authenticator) -> Self {
        Self { http, origin, auth }
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// GETs `get.path`, answering one authentication challenge and
    /// following redirects; a 2xx response or an error.
    pub fn get(&self, get: &Get<'_>) -> Result<Response<Body>, SourceError> {
        let mut url = format!("{}{}", self.origin, get.path);
        let mut challenge_answered = false;
        let mut redirects = 0;
        loop {
            let to_registry = same_origin(&url, &self.origin);
            let authorization = if to_registry {
                self.auth.authorization(&self.http)?
            } else {
                None
            };
            let mut response = self.http.send(get.what, || {
                let mut request = self.http.agent.get(&url);
                if let Some(accept) = get.accept {
                    request = request.header("Accept", accept);
                }
                if let Some(from) = get.range_from {
                    request = request.header("Range", format!("bytes={from}-"));
                }
                if let Some(value) = &authorization {
                    request = request.header("Authorization", value.expose_secret());
                }
                request
            })?;
            let status = response.status().as_u16();
            match status {
                200..=299 => return Ok(response),
                301 | 302 | 303 | 307 | 308 => {
                    redirects += 1;
                    let location = response
                        .headers()
                        .get("location")
                        .and_then(|value| value.to_str().ok());
                    let next = match location {
                        Some(location) if redirects <= MAX_REDIRECTS => {
                            resolve_location(&url, location)
                        }
                        _ => None,
                    };
                    url = next.ok_or_else(|| SourceError::Transport {
                        what: get.what.to_owned(),
                        detail: format!(
                            "bad or too many redirects (HTTP {status} from {})",
                            strip_query(&url)
                        ),
                    })?;
                }
                401 if to_registry && !challenge_answered => {
                    challenge_answered = true;
                    let challenge = challenge::choose(
                        response
                            .headers()
                            .get_all("www-authenticate")
                            .iter()
                            .filter_map(|value| value.to_str().ok()),
                    );
                    self.auth.answer(&self.http, challenge, get.what)?;
                }
                401 | 403 => {
                    return Err(self
                        .auth
                        .refused(get.what, &registry_message(&mut response)));
                }
                404 => {
                    return Err(SourceError::NotFound {
                        what: get.what.to_owned(),
                    });
                }
                other => {
                    return Err(SourceError::Transport {
                        what: get.what.to_owned(),
                        detail: format!(
                            "unexpected HTTP {other} from {}: {}",
                            strip_query(&url),
                            registry_message(&mut response)
                        ),
                    });
                }
            }
        }
    }
}

/// The origin URL for a registry name: Docker Hub's API host for
/// `docker.io`; plain http for loopback and `localhost` or when told so.
pub(crate) fn origin(registry: &str, insecure: bool) -> String {
    let host = match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    };
    let scheme = if insecure || is_loopback_host(host) {
        "http"
    } else {
        "https"
    };
    format!("{scheme}://{host}")
}

/// `localhost` or a loopback address, with or without a port.
fn is_loopback_host(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL points at this machine.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    is_loopback_host(rest.split('/').next().unwrap_or(rest))
}

fn same_origin(url: &str, origin: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// The absolute URL a `Location` header means relative to `current`.
fn resolve_location(current: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let (scheme, rest) = current.split_once("://")?;
    if let Some(authority_path) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{authority_path}"));
    }
    let authority = rest.split('/').next()?;
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = strip_query(&rest[authority.len()..]);
    let dir = &path[..path.rfind('/').map_or(0, |slash| slash + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

/// A URL without its query: signed blob URLs carry credentials there, and
/// URLs go into errors and logs.
pub(crate) fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// The registry's own explanation of an error answer (`{"errors":[{"code",
/// "message"}]}`), or empty.
pub(crate) fn registry_message(response: &mut Response<Body>) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(body) = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
    else {
        return String::new();
    };
    match serde_json::from_slice::<Errors>(&body) {
        Ok(parsed) => parsed
            .errors
            .iter()
            .map(|entry| format!("{}: {}", entry.code, entry.message))
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(&body).chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_pick_the_scheme_and_docker_hubs_host() {
        assert_eq!(origin("docker.io", false), "https://registry-1.docker.io");
        assert_eq!(origin("ghcr.io", false), "https://ghcr.io");
        assert_eq!(origin("127.0.0.1:5000", false), "http://127.0.0.1:5000");
        assert_eq!(origin("localhost:5000", false), "http://localhost:5000");
        assert_eq!(origin("[::1]:5000", false), "http://[::1]:5000");
        assert_eq!(origin("127.9.9.9", false), "http://127.9.9.9");
        assert_eq!(origin("reg.site:5000", true), "http://reg.site:5000");
        assert_eq!(origin("10.0.0.1:5000", false), "https://10.0.0.1:5000");
    }

    #[test]
    fn credentials_stay_on_the_registrys_origin() {
        let origin = "http://127.0.0.1:5000";
        assert!(same_origin("http://127.0.0.1:5000/v2/a/blobs/x", origin));
        assert!(!same_origin("http://127.0.0.1:50001/v2/", origin));
        assert!(!same_origin("https://127.0.0.1:5000/v2/", origin));
        assert!(!same_origin("http://s3.example/bucket?sig=1", origin));
    }

    #[test]
    fn locations_resolve_against_the_current_url() {
        let current = "https://r.example/v2/a/blobs/sha256:1?x=y";
        for (location, want) in [
            ("https://s3.example/b?sig=1", "https://s3.example/b?sig=1"),
            ("//cdn.example/b", "https://cdn.example/b"),
            ("/v2/other", "https://r.example/v2/other"),
            ("next", "https://r.example/v2/a/blobs/next"),
        ] {
            assert_eq!(
                resolve_location(current, location).as_deref(),
                Some(want),
                "{location}"
            );
        }
    }

    #[test]
    fn queries_are_kept_out_of_messages() {
        assert_eq!(
            strip_query("https://s3.example/b?X-Amz-Signature=secret"),
            "https://s3.example/b"
        );
        assert!(is_loopback_url("http://localhost:1/token"));
        assert!(!is_loopback_url("http://auth.example/token"));
    }
}
