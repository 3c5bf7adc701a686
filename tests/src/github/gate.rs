//! What every REST request passes through, in GitHub's order: injected
//! faults, authentication, secondary then primary rate limits, the handler,
//! then ETag / `If-None-Match` (a 304 costs no budget) and the
//! `x-ratelimit-*` headers. Each request is recorded for tests to count.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::faults::FaultKind;
use super::ratelimit::{Budget, Refusal};
use super::shared::{RequestRecord, Shared};
use super::world::ApiError;

/// Put on each request by the server: cancelling it closes the connection
/// without an answer (the "dropped connection" fault).
#[derive(Clone)]
pub struct ConnectionKill(pub CancellationToken);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({
            "message": self.message,
            "documentation_url": "https://docs.github.com/rest",
            "status": self.status.to_string(),
        });
        (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body.to_string(),
        )
            .into_response()
    }
}

fn budget_headers(headers: &mut HeaderMap, budget: Budget) {
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("ascii header"));
    };
    set("x-ratelimit-limit", budget.limit.to_string());
    set("x-ratelimit-remaining", budget.remaining.to_string());
    set("x-ratelimit-used", budget.used.to_string());
    set("x-ratelimit-reset", budget.reset.to_string());
    set("x-ratelimit-resource", "core".into());
}

/// The REST API's middleware.
pub async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let token = authorization
        .as_deref()
        .and_then(|value| value.split_once(' '))
        .map(|(_, token)| token.trim().to_string());
    let record = |status: u16| RequestRecord {
        method: method.to_string(),
        path: path_and_query.clone(),
        token: token.clone(),
        status,
        at: Utc::now(),
    };

    let faults = shared
        .faults
        .lock()
        .expect("faults lock")
        .hit(method.as_str(), &path);
    for fault in faults {
        match fault {
            FaultKind::Latency(delay) => tokio::time::sleep(delay).await,
            FaultKind::Status(status) => {
                shared
                    .requests
                    .lock()
                    .expect("log lock")
                    .push(record(status));
                return ApiError::new(status, "Server Error (injected)").into_response();
            }
            FaultKind::Drop => {
                shared.requests.lock().expect("log lock").push(record(0));
                if let Some(kill) = request.extensions().get::<ConnectionKill>() {
                    kill.0.cancel();
                }
                return std::future::pending().await;
            }
        }
    }

    let response = authorized(
        &shared,
        request,
        next,
        &method,
        &path,
        authorization.as_deref(),
    )
    .await;
    shared
        .requests
        .lock()
        .expect("log lock")
        .push(record(response.status().as_u16()));
    response
}

async fn authorized(
    shared: &Shared,
    mut request: Request,
    next: Next,
    method: &Method,
    path: &str,
    authorization: Option<&str>,
) -> Response {
    let now = Utc::now();
    let identity = match shared
        .credentials
        .lock()
        .expect("credentials lock")
        .authenticate(authorization, now)
    {
        Ok(identity) => identity,
        Err(err) => return err.into_response(),
    };
    let key = identity.rate_key();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_string())
        .unwrap_or_else(|| path.to_string());
    // GET /rate_limit is free and never limited.
    let free = path == "/rate_limit";
    if !free {
        let (admitted, send_retry_after) = {
            let mut limiter = shared.limiter.lock().expect("limiter lock");
            let admitted = limiter.admit(&key, method.as_str(), &endpoint, now);
            (admitted, limiter.settings.send_retry_after)
        };
        if let Err(refusal) = admitted {
            return refused(refusal, send_retry_after);
        }
    }
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    request.extensions_mut().insert(identity);
    let response = next.run(request).await;
    let (mut response, not_modified) = with_etag(method, if_none_match, response).await;
    let budget = {
        let mut limiter = shared.limiter.lock().expect("limiter lock");
        if free {
            limiter.budget(&key, Utc::now())
        } else {
            limiter.finish(&key, !not_modified, Utc::now())
        }
    };
    let headers = response.headers_mut();
    budget_headers(headers, budget);
    headers.insert(
        "x-github-api-version-selected",
        HeaderValue::from_static("2022-11-28"),
    );
    headers.insert(
        "x-github-media-type",
        HeaderValue::from_static("github.v3; format=json"),
    );
    response
}

fn refused(refusal: Refusal, send_retry_after: bool) -> Response {
    match refusal {
        Refusal::Primary { status, budget } => {
            let mut response = ApiError::new(
                status,
                "API rate limit exceeded. Wait for the reset or authenticate with a higher limit.",
            )
            .into_response();
            budget_headers(response.headers_mut(), budget);
            response
        }
        Refusal::Secondary {
            retry_after,
            budget,
        } => {
            let mut response = ApiError::new(
                403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            )
            .into_response();
            budget_headers(response.headers_mut(), budget);
            if send_retry_after {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&retry_after.as_secs().to_string()).expect("digits"),
                );
            }
            response
        }
    }
}

/// Adds an `ETag` to a successful GET and answers 304 (no body) when the
/// request's `If-None-Match` names it. Returns whether it was a 304.
async fn with_etag(
    method: &Method,
    if_none_match: Option<HeaderValue>,
    response: Response,
) -> (Response, bool) {
    if method != Method::GET || response.status() != StatusCode::OK {
        return (response, false);
    }
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let etag = format!("W/\"{}\"", hex::encode(Sha256::digest(&bytes)));
    parts.headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex etag"),
    );
    let strip = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    let matches = if_none_match
        .as_ref()
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.trim() == "*" || value.split(',').any(|tag| strip(tag) == strip(&etag))
        });
    if matches {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return (Response::from_parts(parts, Body::empty()), true);
    }
    (Response::from_parts(parts, Body::from(bytes)), false)
}
