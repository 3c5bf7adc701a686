//! The HTTP API, behind a bearer token (constant-time compare):
//!
//! | request | answer |
//! |---|---|
//! | `POST /images` `{source, ttl_seconds?, wait?, platform?, apptainer?, tag?}` | 200 and the image when published (`wait`, the default) or present; 202 `{id, digest, path, ...}` when `wait` is false |
//! | `GET /images` | 200, every published image |
//! | `GET /images/{digest}` | 200 or 404 |
//! | `DELETE /images/{digest}` | 204 or 404 |
//! | `GET /requests/{id}` | 200 with `status` `pending`, `published`, `already_present` or `failed` |
//! | no or a wrong token | 401 |
//!
//! Errors are `{"error": "...", "kind": "..."}` with a status that says
//! whose fault it is (400, 403, 404, 422, 500, 502, 503).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::image::Digest;
use crate::service::{ImageRequest, Outcome, RequestError, RequestState, Service, status_name};
use crate::store::ImageRecord;

use crate::cli::parse_platform;

/// Largest request body: requests are a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// `POST /images`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostImage {
    pub source: String,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Answer when the image is published (default), or at once with 202.
    #[serde(default = "yes")]
    pub wait: bool,
    /// `os/arch[/variant]`.
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub apptainer: Option<bool>,
    #[serde(default)]
    pub tag: Option<String>,
}

fn yes() -> bool {
    true
}

/// An image, as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImageBody {
    /// `published`, `already_present`, or `pending` (202).
    pub status: String,
    pub digest: Digest,
    pub source: String,
    pub path: String,
    #[serde(default)]
    pub tag_path: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub sizes: Option<Sizes>,
    #[serde(default)]
    pub timings: Option<crate::service::Timings>,
    #[serde(default)]
    pub expires_unix_ms: Option<i64>,
    #[serde(default)]
    pub last_requested_unix_ms: Option<i64>,
    /// The request id to poll (202 only).
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Sizes {
    pub bytes_downloaded: u64,
    pub bytes_written: u64,
    pub files_written: u64,
}

fn image_body(status: &str, record: &ImageRecord) -> ImageBody {
    ImageBody {
        status: status.to_owned(),
        digest: record.digest.clone(),
        source: record.source.clone(),
        path: record.path.display().to_string(),
        tag_path: record.tag_path.as_ref().map(|p| p.display().to_string()),
        tags: record.tags.clone(),
        sizes: Some(Sizes {
            bytes_downloaded: record.bytes_downloaded,
            bytes_written: record.bytes_written,
            files_written: record.files_written,
        }),
        timings: None,
        expires_unix_ms: Some(record.expires_unix_ms),
        last_requested_unix_ms: Some(record.last_requested_unix_ms),
        id: None,
    }
}

fn outcome_body(outcome: &Outcome) -> ImageBody {
    let mut body = image_body(status_name(outcome.status), &outcome.record);
    body.timings = Some(outcome.timings);
    body
}

/// An error answer.
pub struct ApiError(StatusCode, String, &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1, "kind": self.2 });
        (self.0, Json(body)).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        let status = match &err {
            RequestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RequestError::NotFound(_) => StatusCode::NOT_FOUND,
            RequestError::Denied(_) | RequestError::Forbidden(_) => StatusCode::FORBIDDEN,
            RequestError::BadImage(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RequestError::Unavailable(_) => StatusCode::BAD_GATEWAY,
            RequestError::Publish(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, err.to_string(), err.kind())
    }
}

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what, "not_found")
}

#[derive(Clone)]
struct Api {
    service: Arc<Service>,
    tokens: Arc<Vec<SecretString>>,
}

/// The API's routes.
pub fn router(service: Arc<Service>, tokens: Vec<SecretString>) -> Router {
    let api = Api {
        service,
        tokens: Arc::new(tokens),
    };
    Router::new()
        .route("/images", get(list_images).post(post_image))
        .route("/images/{digest}", get(get_image).delete(delete_image))
        .route("/requests/{id}", get(get_request))
        .layer(middleware::from_fn_with_state(api.clone(), authenticate))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// Whether `given` is one of `tokens`, comparing every token in constant
/// time (only lengths may differ in timing).
pub fn token_matches(tokens: &[SecretString], given: &str) -> bool {
    tokens.iter().fold(false, |found, token| {
        let equal: bool = token
            .expose_secret()
            .as_bytes()
            .ct_eq(given.as_bytes())
            .into();
        found | equal
    })
}

async fn authenticate(
    State(api): State<Api>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match given {
        Some(token) if token_matches(&api.tokens, token.trim()) => next.run(request).await,
        _ => {
            let mut response = ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required".into(),
                "unauthorized",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("valid header"),
            );
            response
        }
    }
}

fn parse_digest(text: &str) -> Result<Digest, ApiError> {
    let text = if text.starts_with("sha256:") {
        text.to_owned()
    } else {
        format!("sha256:{text}")
    };
    text.parse().map_err(|err: crate::image::BadDigest| {
        ApiError(StatusCode::BAD_REQUEST, err.to_string(), "bad_request")
    })
}

async fn post_image(
    State(api): State<Api>,
    body: Result<Json<PostImage>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) =
        body.map_err(|err| ApiError(StatusCode::BAD_REQUEST, err.body_text(), "bad_request"))?;
    let platform = body
        .platform
        .as_deref()
        .map(parse_platform)
        .transpose()
        .map_err(|err| RequestError::BadRequest(err.0))?;
    let request = ImageRequest {
        source: body.source,
        ttl: body.ttl_seconds.map(std::time::Duration::from_secs),
        platform,
        apptainer: body.apptainer,
        tag: body.tag,
    };
    if body.wait {
        let outcome = api.service.request(request).await?;
        return Ok((StatusCode::OK, Json(outcome_body(&outcome))).into_response());
    }
    let prepared = match api.service.prepare(request).await {
        Ok(prepared) => prepared,
        Err(err) => {
            api.service.count(&Err(err.clone()));
            return Err(err.into());
        }
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let body = ImageBody {
        status: "pending".into(),
        digest: prepared.digest.clone(),
        source: prepared.source.clone(),
        path: prepared.path.display().to_string(),
        tag_path: prepared.tag_path.as_ref().map(|p| p.display().to_string()),
        tags: prepared.tag.iter().map(|t| t.to_string()).collect(),
        sizes: None,
        timings: None,
        expires_unix_ms: None,
        last_requested_unix_ms: None,
        id: Some(id.clone()),
    };
    api.service.submit(id, prepared);
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn list_images(State(api): State<Api>) -> Json<Vec<ImageBody>> {
    let records = api.service.store().snapshot();
    Json(
        records
            .images
            .values()
            .map(|record| image_body("published", record))
            .collect(),
    )
}

async fn get_image(
    State(api): State<Api>,
    Path(digest): Path<String>,
) -> Result<Json<ImageBody>, ApiError> {
    let digest = parse_digest(&digest)?;
    let record = api
        .service
        .store()
        .image(&digest)
        .ok_or_else(|| not_found(format!("{digest}: not published")))?;
    Ok(Json(image_body("published", &record)))
}

async fn delete_image(
    State(api): State<Api>,
    Path(digest): Path<String>,
) -> Result<StatusCode, ApiError> {
    let digest = parse_digest(&digest)?;
    if api.service.delete(&digest).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("{digest}: not published")))
    }
}

async fn get_request(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match api.service.request_state(&id) {
        RequestState::Pending => Ok(Json(serde_json::json!({ "id": id, "status": "pending" }))),
        RequestState::Finished(answer) => {
            let image = answer
                .digest
                .as_ref()
                .and_then(|digest| api.service.store().image(digest));
            Ok(Json(serde_json::json!({
                "id": id,
                "status": answer.status,
                "error": answer.error,
                "image": image.as_ref().map(|record| image_body(&answer.status, record)),
            })))
        }
        RequestState::Unknown => Err(not_found(format!("request {id}: unknown"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listed_token_matches() {
        let tokens = vec![SecretString::from("alpha"), SecretString::from("beta")];
        assert!(token_matches(&tokens, "beta"));
        assert!(!token_matches(&tokens, "bet"));
        assert!(!token_matches(&tokens, ""));
        assert!(!token_matches(&[], "alpha"));
    }
}
