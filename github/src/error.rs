//! [`GitHubError`]: why a request failed, in the terms a caller acts on,
//! and how an answer's status and headers map to it.

use std::time::Duration;

use hyper::StatusCode;

use crate::http::{HttpResponse, TransportError};

/// Why a request failed, in the terms a caller acts on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GitHubError {
    /// The primary budget is spent until `reset` (Unix seconds).
    #[error("primary rate limit exhausted until {reset}")]
    RateLimited { reset: i64 },
    /// A secondary limit: send nothing for `retry_after` (GitHub's
    /// `retry-after`, or a back-off of our own when it sent none).
    #[error("secondary rate limit: retry after {retry_after:?}")]
    SecondaryLimited { retry_after: Duration },
    #[error("{path}: not found (or not visible to this token)")]
    NotFound { path: String },
    #[error("{path}: bad credentials")]
    Unauthorized { path: String },
    /// 403 that is no rate limit: the credentials lack a permission.
    #[error("{path}: forbidden: {message}")]
    Forbidden { path: String, message: String },
    #[error("{path}: HTTP {status}")]
    Status { path: String, status: u16 },
    /// No answer (connection, TLS, timeout). `failure` is part of the
    /// message rather than a `source`, so a printed chain says it once.
    #[error("{path}: {failure}")]
    Transport {
        path: String,
        failure: TransportError,
    },
    /// The app JWT could not be signed (the key was checked at start, so
    /// this should not happen).
    #[error("signing the GitHub App JWT: {0}")]
    Signing(String),
    #[error("{path}: unexpected JSON: {message}")]
    Decode { path: String, message: String },
}

impl GitHubError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::SecondaryLimited { .. } => "secondary_limited",
            Self::NotFound { .. } => "not_found",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::Status { .. } => "status",
            Self::Transport {
                failure: TransportError::Tls { .. },
                ..
            } => "tls",
            Self::Transport { .. } => "transport",
            Self::Decode { .. } => "decode",
            Self::Signing(_) => "signing",
        }
    }

    /// How long GitHub asked us to send nothing, for a rate limit.
    pub fn retry_in(&self, now_unix: i64) -> Option<Duration> {
        match self {
            Self::RateLimited { reset } => Some(Duration::from_secs(
                u64::try_from(reset.saturating_sub(now_unix)).unwrap_or(0) + 1,
            )),
            Self::SecondaryLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// A failure of the credentials themselves (not of one resource).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, Self::Unauthorized { .. } | Self::Signing(_))
    }

    /// A body that is not the JSON expected.
    pub fn decode(path: &str, err: serde_json::Error) -> Self {
        Self::Decode {
            path: path.into(),
            message: err.to_string(),
        }
    }
}

/// GitHub's words for a secondary limit, in a 403 or 429 body.
pub(crate) fn says_secondary_limit(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    text.contains("secondary rate limit") || text.contains("abuse detection")
}

/// The error a non-success answer means; `None` for a success (or a 304,
/// which the caller handles). `own_backoff` is the wait to impose on a
/// secondary limit GitHub sent without `retry-after`.
pub(crate) fn status_error(
    path: &str,
    response: &HttpResponse,
    own_backoff: Duration,
) -> Option<GitHubError> {
    let status = response.status;
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return None;
    }
    let path = path.to_string();
    Some(match status {
        StatusCode::NOT_FOUND => GitHubError::NotFound { path },
        StatusCode::UNAUTHORIZED => GitHubError::Unauthorized { path },
        StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => {
            if let Some(seconds) = response.header_number::<u64>("retry-after") {
                GitHubError::SecondaryLimited {
                    retry_after: Duration::from_secs(seconds),
                }
            } else if response.header_number::<u32>("x-ratelimit-remaining") == Some(0) {
                let reset = response.header_number("x-ratelimit-reset").unwrap_or(0);
                GitHubError::RateLimited { reset }
            } else if status == StatusCode::TOO_MANY_REQUESTS
                || says_secondary_limit(&response.body)
            {
                // GitHub: "otherwise, wait for at least one minute before
                // retrying", longer on each repeat.
                GitHubError::SecondaryLimited {
                    retry_after: own_backoff,
                }
            } else {
                GitHubError::Forbidden {
                    path,
                    message: message_of(&response.body),
                }
            }
        }
        status => GitHubError::Status {
            path,
            status: status.as_u16(),
        },
    })
}

/// The `message` of a GitHub error body, or its first bytes.
fn message_of(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .map(|error| error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderMap, HeaderValue};

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> HttpResponse {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec().into(),
        }
    }

    const BACKOFF: Duration = Duration::from_secs(60);

    #[test]
    fn a_403_with_retry_after_is_a_secondary_limit_of_that_length() {
        let err = status_error("/x", &answer(403, &[("retry-after", "2")], ""), BACKOFF);
        assert!(
            matches!(err, Some(GitHubError::SecondaryLimited { retry_after }) if retry_after == Duration::from_secs(2))
        );
    }

    #[test]
    fn a_secondary_limit_without_retry_after_gets_our_own_back_off() {
        let body = r#"{"message": "You have exceeded a secondary rate limit. Please wait."}"#;
        let err = status_error(
            "/x",
            &answer(403, &[("x-ratelimit-remaining", "4000")], body),
            BACKOFF,
        );
        assert!(
            matches!(err, Some(GitHubError::SecondaryLimited { retry_after }) if retry_after == BACKOFF),
            "{err:?}"
        );
        let err = status_error("/x", &answer(429, &[], ""), BACKOFF);
        assert!(matches!(err, Some(GitHubError::SecondaryLimited { .. })));
    }

    #[test]
    fn a_spent_budget_is_a_primary_limit_and_a_plain_403_is_forbidden() {
        let spent = answer(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000000"),
            ],
            "",
        );
        assert!(matches!(
            status_error("/x", &spent, BACKOFF),
            Some(GitHubError::RateLimited {
                reset: 1_700_000_000
            })
        ));
        let denied = answer(
            403,
            &[],
            r#"{"message": "Resource not accessible by integration"}"#,
        );
        let err = status_error("/x", &denied, BACKOFF).unwrap();
        assert_eq!(err.metric_label(), "forbidden");
        assert!(err.to_string().contains("Resource not accessible"), "{err}");
    }
}
