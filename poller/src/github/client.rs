//! A small GitHub REST client: authenticated GETs with conditional requests
//! (`If-None-Match`; a 304 costs no rate limit), the `x-ratelimit-*`
//! headers read on every response, and errors that say which limit hit.
//!
//! Plain HTTP rather than octocrab: octocrab's `get` turns a 304 into an
//! error and its models reject fields GitHub sends as null.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, ETAG, IF_NONE_MATCH, LINK, RETRY_AFTER, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::app::AppCredentials;

/// What a GET returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched<T> {
    /// The resource did not change since the ETag given.
    NotModified,
    /// A new representation, its ETag, and the path of the next page
    /// (from the `Link` header), if any.
    Fresh {
        value: T,
        etag: Option<String>,
        next: Option<String>,
    },
}

/// The primary budget as the last response reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds.
    pub reset: i64,
}

/// Why a request failed, in the terms a caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    /// The primary budget is spent until `reset` (Unix seconds).
    #[error("primary rate limit exhausted until {reset}")]
    RateLimited { reset: i64 },
    /// A secondary limit: send nothing for `retry_after`.
    #[error("secondary rate limit: retry after {retry_after:?}")]
    SecondaryLimited { retry_after: Duration },
    #[error("{path}: not found (or not visible to this token)")]
    NotFound { path: String },
    #[error("{path}: bad credentials")]
    Unauthorized { path: String },
    #[error("{path}: HTTP {status}")]
    Status { path: String, status: u16 },
    #[error("{path}: {source}")]
    Transport {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The app JWT could not be signed (the key was checked at start, so
    /// this should not happen).
    #[error("signing the GitHub App JWT: {0}")]
    Signing(String),
    #[error("{path}: unexpected JSON: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl GitHubError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::SecondaryLimited { .. } => "secondary_limited",
            Self::NotFound { .. } => "not_found",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Status { .. } => "status",
            Self::Transport { .. } => "transport",
            Self::Decode { .. } => "decode",
            Self::Signing(_) => "signing",
        }
    }
}

/// Who the client is to GitHub.
#[derive(Clone)]
pub enum Auth {
    /// A personal access token.
    Token(SecretString),
    /// A GitHub App installation; its token is minted and refreshed.
    Installation {
        app: Arc<AppCredentials>,
        installation: u64,
    },
}

/// Requests one client has in flight at most: GitHub's secondary limits
/// punish concurrency, and the poll is sequential anyway; this bounds the
/// webhook endpoint's run lookups.
pub const MAX_CONCURRENT_REQUESTS: usize = 8;

/// An authenticated client for one GitHub (github.com or a GHES base URL).
pub struct GitHubClient {
    http: reqwest::Client,
    base_url: String,
    auth: Auth,
    budget: Mutex<Option<Budget>>,
    in_flight: tokio::sync::Semaphore,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

fn header_number<T: std::str::FromStr>(response: &reqwest::Response, name: &str) -> Option<T> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl GitHubClient {
    /// A client for the API at `base_url` (e.g. `https://api.github.com`)
    /// with a personal access token.
    pub fn new(base_url: &str, token: SecretString) -> Self {
        Self::with_auth(base_url, Auth::Token(token))
    }

    /// A client for the API at `base_url` authenticating as `auth`.
    pub fn with_auth(base_url: &str, auth: Auth) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client builds"),
            base_url: base_url.trim_end_matches('/').to_string(),
            auth,
            budget: Mutex::new(None),
            in_flight: tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS),
        }
    }

    /// The installation this client acts for, if it is an app's.
    pub fn installation(&self) -> Option<u64> {
        match &self.auth {
            Auth::Token(_) => None,
            Auth::Installation { installation, .. } => Some(*installation),
        }
    }

    async fn bearer(&self) -> Result<SecretString, GitHubError> {
        match &self.auth {
            Auth::Token(token) => Ok(token.clone()),
            Auth::Installation { app, installation } => app.installation_token(*installation).await,
        }
    }

    /// A request to `path` with the credentials and the headers GitHub
    /// asks every client to send.
    async fn authorized(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, GitHubError> {
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.bearer().await?.expose_secret()),
            )
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header(USER_AGENT, "slurm-actions"))
    }

    /// Sends `request` within the in-flight bound (the permit is held
    /// until the caller has read the body) and records the budget the
    /// answer reports, whatever the method.
    async fn exchange(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, reqwest::Response), GitHubError> {
        let permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let response = request
            .send()
            .await
            .map_err(|source| GitHubError::Transport {
                path: path.into(),
                source,
            })?;
        if let (Some(limit), Some(remaining), Some(reset)) = (
            header_number(&response, "x-ratelimit-limit"),
            header_number(&response, "x-ratelimit-remaining"),
            header_number(&response, "x-ratelimit-reset"),
        ) {
            *self.budget.lock().expect("budget lock") = Some(Budget {
                limit,
                remaining,
                reset,
            });
        }
        Ok((permit, response))
    }

    /// The budget the last response reported, if any.
    pub fn budget(&self) -> Option<Budget> {
        *self.budget.lock().expect("budget lock")
    }

    /// GETs `path` (e.g. `/repos/o/r/actions/runs/1`), conditionally when
    /// `etag` is given.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Fetched<T>, GitHubError> {
        let mut request = self.authorized(reqwest::Method::GET, path).await?;
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let (_permit, response) = self.exchange(path, request).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if let Some(err) = status_error(path, &response) {
            return Err(err);
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let next = response
            .headers()
            .get(LINK)
            .and_then(|value| value.to_str().ok())
            .and_then(next_link)
            .map(|url| url.strip_prefix(&self.base_url).unwrap_or(&url).to_string());
        let value = read_json(path, response).await?;
        Ok(Fetched::Fresh { value, etag, next })
    }
}

impl GitHubClient {
    /// Sends one non-GET request and returns the response for the caller
    /// to check. Never retried here: a POST that failed may have happened
    /// (callers look before repeating it).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, GitHubError> {
        let mut request = self.authorized(method, path).await?;
        if let Some(body) = body {
            request = request.json(body);
        }
        let (_permit, response) = self.exchange(path, request).await?;
        match status_error(path, &response) {
            Some(err) => Err(err),
            None => Ok(response),
        }
    }

    /// POSTs `body` to `path` once and decodes the answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, GitHubError> {
        let response = self.send(reqwest::Method::POST, path, Some(body)).await?;
        read_json(path, response).await
    }

    /// DELETEs `path` once.
    pub async fn delete(&self, path: &str) -> Result<(), GitHubError> {
        self.send(reqwest::Method::DELETE, path, None)
            .await
            .map(drop)
    }
}

/// The error a non-success answer means, in the terms a caller acts on;
/// `None` for a success (or a 304, which the caller handles).
pub(crate) fn status_error(path: &str, response: &reqwest::Response) -> Option<GitHubError> {
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return None;
    }
    let path = path.to_string();
    Some(match status {
        StatusCode::NOT_FOUND => GitHubError::NotFound { path },
        StatusCode::UNAUTHORIZED => GitHubError::Unauthorized { path },
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
            if let Some(seconds) = header_number::<u64>(response, RETRY_AFTER.as_str()) {
                GitHubError::SecondaryLimited {
                    retry_after: Duration::from_secs(seconds),
                }
            } else if header_number::<u32>(response, "x-ratelimit-remaining") == Some(0) {
                let reset = header_number(response, "x-ratelimit-reset").unwrap_or(0);
                GitHubError::RateLimited { reset }
            } else {
                GitHubError::Status {
                    path,
                    status: status.as_u16(),
                }
            }
        }
        status => GitHubError::Status {
            path,
            status: status.as_u16(),
        },
    })
}

/// The body of `response`, decoded as `T`.
pub(crate) async fn read_json<T: DeserializeOwned>(
    path: &str,
    response: reqwest::Response,
) -> Result<T, GitHubError> {
    let bytes = response
        .bytes()
        .await
        .map_err(|source| GitHubError::Transport {
            path: path.into(),
            source,
        })?;
    serde_json::from_slice(&bytes).map_err(|source| GitHubError::Decode {
        path: path.into(),
        source,
    })
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|param| param.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        let link = "<https://api.github.com/repos/a/b/actions/runs?page=1>; rel=\"prev\", \
                    <https://api.github.com/repos/a/b/actions/runs?page=3>; rel=\"next\", \
                    <https://api.github.com/repos/a/b/actions/runs?page=9>; rel=\"last\"";
        assert_eq!(
            next_link(link).as_deref(),
            Some("https://api.github.com/repos/a/b/actions/runs?page=3")
        );
        assert_eq!(next_link("<x>; rel=\"last\""), None);
    }
}
