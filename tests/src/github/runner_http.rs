//! The runner protocol over HTTP (see [`super::runner_api`] for the table
//! of endpoints). Not rate limited and not recorded: it stands in for
//! GitHub's private runner service, not its REST API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::runner_api::{JobControl, JobOutcome, SessionRequest};
use super::shared::Shared;
use super::world::ApiError;

/// Longest a runner's long poll is held.
const MAX_WAIT: Duration = Duration::from_secs(30);

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_runner/sessions", post(open_session))
        .route("/_runner/sessions/{session}", delete(close_session))
        .route("/_runner/sessions/{session}/job", get(next_job))
        .route(
            "/_runner/sessions/{session}/jobs/{job_id}",
            get(job_control),
        )
        .route(
            "/_runner/sessions/{session}/jobs/{job_id}/complete",
            post(complete_job),
        )
}

async fn open_session(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<SessionRequest>,
) -> Result<Response, ApiError> {
    let info = shared.mutate(|world, now| world.open_session(request, now))?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn close_session(
    State(shared): State<Arc<Shared>>,
    Path(session): Path<String>,
) -> StatusCode {
    shared.mutate(|world, _| world.close_session(&session));
    StatusCode::NO_CONTENT
}

/// Long poll: answers as soon as a job is assigned, or 204 after `wait_ms`.
async fn next_job(
    State(shared): State<Arc<Shared>>,
    Path(session): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let wait = query
        .get("wait_ms")
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::ZERO)
        .min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = shared.version.subscribe();
    loop {
        changes.borrow_and_update();
        if let Some(job) = shared.mutate(|world, now| world.next_job(&session, now))? {
            return Ok((StatusCode::OK, Json(job)).into_response());
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(StatusCode::NO_CONTENT.into_response());
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

async fn job_control(
    State(shared): State<Arc<Shared>>,
    Path((session, job_id)): Path<(String, u64)>,
) -> Result<Json<JobControl>, ApiError> {
    let cancel_requested = shared.mutate(|world, now| world.job_control(&session, job_id, now))?;
    Ok(Json(JobControl { cancel_requested }))
}

async fn complete_job(
    State(shared): State<Arc<Shared>>,
    Path((session, job_id)): Path<(String, u64)>,
    Json(outcome): Json<JobOutcome>,
) -> Result<StatusCode, ApiError> {
    shared.mutate(|world, now| world.complete_job(&session, job_id, outcome.result, now))?;
    Ok(StatusCode::NO_CONTENT)
}
