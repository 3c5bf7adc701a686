//! A small GitHub REST client: authenticated requests over HTTPS
//! ([`Endpoint`]), conditional GETs (`If-None-Match`; a 304 costs no rate
//! limit), the `x-ratelimit-*` headers read on every answer, announced
//! limits honoured before sending ([`crate::limits`]), and credential
//! failures reported to the service's health ([`AuthStatus`]).
//!
//! Plain HTTP rather than octocrab: octocrab's `get` turns a 304 into an
//! error, its models reject fields GitHub sends as null, and its retry
//! layer re-sends POSTs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderName, HeaderValue, IF_NONE_MATCH, LINK,
    USER_AGENT,
};
use hyper::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::app::AppCredentials;
use crate::auth_status::AuthStatus;
use crate::error::{GitHubError, status_error};
use crate::http::{Http, HttpResponse};
use crate::limits::{LimitGate, SECONDARY_BACKOFF};
use crate::tls::{TlsRoots, TlsSetupError};

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

/// One GitHub (github.com or a GHES base URL) and how to reach it: the
/// HTTPS client every identity shares, and their credential health.
/// Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Endpoint(Arc<EndpointInner>);

#[derive(Debug)]
struct EndpointInner {
    api_url: String,
    http: Http,
    auth_status: Arc<AuthStatus>,
}

impl Endpoint {
    /// The API at `api_url` (e.g. `https://api.github.com`), its server
    /// certificate checked against `roots`.
    pub fn new(api_url: &str, roots: &TlsRoots) -> Result<Self, TlsSetupError> {
        Ok(Self(Arc::new(EndpointInner {
            api_url: api_url.trim_end_matches('/').to_string(),
            http: Http::new(roots)?,
            auth_status: Arc::new(AuthStatus::default()),
        })))
    }

    /// The API base URL, without a trailing slash.
    pub fn api_url(&self) -> &str {
        &self.0.api_url
    }

    pub(crate) fn http(&self) -> &Http {
        &self.0.http
    }

    /// Whether the credentials used through this endpoint work: what a
    /// service's `/healthz` reports.
    pub fn auth_status(&self) -> &Arc<AuthStatus> {
        &self.0.auth_status
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

/// An authenticated client for one identity (a token or an installation).
pub struct GitHubClient {
    endpoint: Endpoint,
    auth: Auth,
    budget: Mutex<Option<Budget>>,
    in_flight: tokio::sync::Semaphore,
    gate: LimitGate,
    /// A GET blocked by a limit that lifts within this long waits for it
    /// instead of failing (one-shot commands); zero: fail at once.
    wait_for_limits: Duration,
}

impl std::fmt::Debug for GitHubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubClient")
            .field("api_url", &self.endpoint.api_url())
            .field("identity", &self.identity())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl GitHubClient {
    /// A client of `endpoint` with a personal access token.
    pub fn new(endpoint: &Endpoint, token: SecretString) -> Self {
        Self::with_auth(endpoint, Auth::Token(token))
    }

    /// A client of `endpoint` authenticating as `auth`.
    pub fn with_auth(endpoint: &Endpoint, auth: Auth) -> Self {
        Self {
            endpoint: endpoint.clone(),
            auth,
            budget: Mutex::new(None),
            in_flight: tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS),
            gate: LimitGate::new(SECONDARY_BACKOFF),
            wait_for_limits: Duration::ZERO,
        }
    }

    /// GETs wait for a limit that lifts within `bound` instead of failing.
    pub fn waiting_for_limits(mut self, bound: Duration) -> Self {
        self.wait_for_limits = bound;
        self
    }

    /// The first back-off of our own after a secondary limit without
    /// `retry-after` (default a minute, as GitHub asks; tests shorten it).
    pub fn with_secondary_backoff(mut self, first: Duration) -> Self {
        self.gate = LimitGate::new(first);
        self
    }

    /// The installation this client acts for, if it is an app's.
    pub fn installation(&self) -> Option<u64> {
        match &self.auth {
            Auth::Token(_) => None,
            Auth::Installation { installation, .. } => Some(*installation),
        }
    }

    /// `token` or `installation <id>`: how health and logs name it.
    pub fn identity(&self) -> String {
        match self.installation() {
            None => "token".into(),
            Some(id) => format!("installation {id}"),
        }
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The budget the last response reported, if any.
    pub fn budget(&self) -> Option<Budget> {
        *self.budget.lock().expect("budget lock")
    }

    async fn bearer(&self) -> Result<SecretString, GitHubError> {
        let token = match &self.auth {
            Auth::Token(token) => Ok(token.clone()),
            Auth::Installation { app, installation } => app.installation_token(*installation).await,
        };
        if let Err(err) = &token {
            // No token at all: the app's key, id or installation is wrong.
            if !matches!(
                err,
                GitHubError::Transport { .. }
                    | GitHubError::RateLimited { .. }
                    | GitHubError::SecondaryLimited { .. }
            ) {
                self.endpoint
                    .auth_status()
                    .failed(&self.identity(), err.to_string());
            }
        }
        token
    }

    /// Sends one request to `path` within the in-flight bound, unless a
    /// limit is in force; records the budget, the limits and the health
    /// of the credentials the answer shows.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        extra: Option<(HeaderName, HeaderValue)>,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, GitHubError> {
        if let Some(limited) = self.gate.blocked(Instant::now()) {
            return Err(limited);
        }
        let bearer = self.bearer().await?;
        let mut headers = vec![
            (
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", bearer.expose_secret()))
                    .map_err(|_| GitHubError::Signing("the token is not a header value".into()))?,
            ),
            (
                ACCEPT,
                HeaderValue::from_static("application/vnd.github+json"),
            ),
            (
                HeaderName::from_static("x-github-api-version"),
                HeaderValue::from_static("2022-11-28"),
            ),
            (USER_AGENT, HeaderValue::from_static("slurm-actions")),
        ];
        if body.is_some() {
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        headers.extend(extra);
        let url = format!("{}{path}", self.endpoint.api_url());
        let _permit = self
            .in_flight
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let response = self
            .endpoint
            .http()
            .send(method, &url, headers, body)
            .await
            .map_err(|failure| GitHubError::Transport {
                path: path.into(),
                failure,
            })?;
        let (now, now_unix) = (Instant::now(), unix_now());
        let budget = match (
            response.header_number("x-ratelimit-limit"),
            response.header_number("x-ratelimit-remaining"),
            response.header_number("x-ratelimit-reset"),
        ) {
            (Some(limit), Some(remaining), Some(reset)) => Some(Budget {
                limit,
                remaining,
                reset,
            }),
            _ => None,
        };
        if let Some(budget) = budget {
            *self.budget.lock().expect("budget lock") = Some(budget);
        }
        match status_error(path, &response, self.gate.own_backoff()) {
            Some(err) => {
                self.gate.limited(&err, now, now_unix);
                if err.is_auth_failure() {
                    self.endpoint
                        .auth_status()
                        .failed(&self.identity(), err.to_string());
                }
                Err(err)
            }
            None => {
                self.gate.answered(
                    budget.map(|budget| (budget.remaining, budget.reset)),
                    now,
                    now_unix,
                );
                self.endpoint.auth_status().succeeded(&self.identity());
                Ok(response)
            }
        }
    }

    /// GETs `path` (e.g. `/repos/o/r/actions/runs/1`), conditionally when
    /// `etag` is given. A limit that lifts within the client's wait bound
    /// is waited for.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Fetched<T>, GitHubError> {
        let deadline = Instant::now() + self.wait_for_limits;
        loop {
            match self.get_once(path, etag).await {
                Err(err) => {
                    let wait = err.retry_in(unix_now());
                    match wait {
                        Some(wait) if Instant::now() + wait <= deadline => {
                            tracing::info!(path, wait_ms = wait.as_millis() as u64, error = %err, "waiting for a GitHub rate limit");
                            tokio::time::sleep(wait).await;
                        }
                        _ => return Err(err),
                    }
                }
                fetched => return fetched,
            }
        }
    }

    async fn get_once<T: DeserializeOwned>(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<Fetched<T>, GitHubError> {
        let conditional = etag
            .and_then(|etag| HeaderValue::from_str(etag).ok())
            .map(|etag| (IF_NONE_MATCH, etag));
        let response = self.exchange(Method::GET, path, conditional, None).await?;
        if response.status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        let etag = response.header_text(ETAG.as_str()).map(str::to_string);
        let next = response
            .header_text(LINK.as_str())
            .and_then(next_link)
            .map(|url| {
                url.strip_prefix(self.endpoint.api_url())
                    .unwrap_or(&url)
                    .to_string()
            });
        let value =
            serde_json::from_slice(&response.body).map_err(|err| GitHubError::decode(path, err))?;
        Ok(Fetched::Fresh { value, etag, next })
    }

    /// POSTs `body` to `path` once and decodes the answer. Never retried
    /// here: a POST that failed may have happened (callers look before
    /// repeating it).
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, GitHubError> {
        let bytes = serde_json::to_vec(body).map_err(|err| GitHubError::decode(path, err))?;
        let response = self.exchange(Method::POST, path, None, Some(bytes)).await?;
        serde_json::from_slice(&response.body).map_err(|err| GitHubError::decode(path, err))
    }

    /// DELETEs `path` once.
    pub async fn delete(&self, path: &str) -> Result<(), GitHubError> {
        self.exchange(Method::DELETE, path, None, None)
            .await
            .map(drop)
    }
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
