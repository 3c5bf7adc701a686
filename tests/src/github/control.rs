//! The control API under `/_emulator/`, for the `github-emulator` binary
//! (the demo, people poking at it). Tests in Rust use the
//! [`super::GitHubEmulator`] methods instead; both change the same world.
//!
//! | method and path | body | does |
//! |---|---|---|
//! | `POST /_emulator/repos` | `{"full_name": "o/r", "user": false}` | adds a repository |
//! | `POST /_emulator/repos/{o}/{r}/runs` | a `WorkflowSpec` | starts a run; `{"run_id": N}` |
//! | `POST /_emulator/repos/{o}/{r}/fan-out` | `{"name", "count", "labels", "steps"}` | starts an N-job run |
//! | `GET /_emulator/runs/{id}` | | run status and every job |
//! | `POST /_emulator/runs/{id}/cancel`, `/rerun` | | as the buttons do |
//! | `POST /_emulator/jobs/{id}/release` | | `waiting`/`requested` -> `queued` |
//! | `GET /_emulator/runners` | | every runner |
//! | `PUT /_emulator/webhook` | `{"url", "secret"}` | where webhooks go |
//! | `GET /_emulator/deliveries` | | every delivery and its attempts |
//! | `POST /_emulator/deliveries/{id}/redeliver` | | same delivery id again |
//! | `GET /_emulator/requests` | | every REST request (method, path, token, status) |
//! | `POST /_emulator/tokens` | `{"token"}` | accepts another PAT |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::json;
use super::model::{OwnerKind, Step, WorkflowSpec};
use super::shared::Shared;
use super::world::ApiError;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator/repos", post(add_repo))
        .route("/_emulator/repos/{owner}/{repo}/runs", post(create_run))
        .route("/_emulator/repos/{owner}/{repo}/fan-out", post(fan_out))
        .route("/_emulator/runs/{run_id}", get(run_state))
        .route("/_emulator/runs/{run_id}/cancel", post(cancel_run))
        .route("/_emulator/runs/{run_id}/rerun", post(rerun))
        .route("/_emulator/jobs/{job_id}/release", post(release_job))
        .route("/_emulator/runners", get(runners))
        .route("/_emulator/webhook", put(set_webhook))
        .route("/_emulator/deliveries", get(deliveries))
        .route("/_emulator/deliveries/{id}/redeliver", post(redeliver))
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/tokens", post(add_token))
}

#[derive(Deserialize)]
struct NewRepo {
    full_name: String,
    #[serde(default)]
    user: bool,
}

async fn add_repo(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<NewRepo>,
) -> Result<Response, ApiError> {
    let kind = if body.user {
        OwnerKind::User
    } else {
        OwnerKind::Organization
    };
    shared.mutate(|world, _| {
        let repo = world.add_repo(&body.full_name, kind)?;
        Ok((StatusCode::CREATED, Json(json::repo(world, &repo))).into_response())
    })
}

fn started(run_id: u64) -> Response {
    (StatusCode::CREATED, Json(json!({ "run_id": run_id }))).into_response()
}

async fn create_run(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Json(spec): Json<WorkflowSpec>,
) -> Result<Response, ApiError> {
    let run_id =
        shared.mutate(|world, now| world.create_run(&format!("{owner}/{repo}"), spec, now))?;
    Ok(started(run_id))
}

#[derive(Deserialize)]
struct FanOut {
    name: String,
    count: usize,
    labels: Vec<String>,
    #[serde(default)]
    steps: Vec<Step>,
}

async fn fan_out(
    State(shared): State<Arc<Shared>>,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<FanOut>,
) -> Result<Response, ApiError> {
    let labels: Vec<&str> = body.labels.iter().map(String::as_str).collect();
    let spec = WorkflowSpec::fan_out(&body.name, body.count, &labels, body.steps);
    let run_id =
        shared.mutate(|world, now| world.create_run(&format!("{owner}/{repo}"), spec, now))?;
    Ok(started(run_id))
}

async fn run_state(
    State(shared): State<Arc<Shared>>,
    Path(run_id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    shared.read(|world, _| {
        let run = world.run(run_id)?;
        let jobs: Vec<Value> = world
            .run_jobs(run_id, true)?
            .into_iter()
            .map(|job| json::job(world, job))
            .collect();
        let mut value = json::run(world, run);
        value["jobs"] = Value::Array(jobs);
        Ok(Json(value))
    })
}

async fn cancel_run(
    State(shared): State<Arc<Shared>>,
    Path(run_id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    shared.mutate(|world, now| world.cancel_run(run_id, now))?;
    Ok(StatusCode::ACCEPTED)
}

async fn rerun(
    State(shared): State<Arc<Shared>>,
    Path(run_id): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    let attempt = shared.mutate(|world, now| world.rerun(run_id, now))?;
    Ok(Json(json!({ "run_attempt": attempt })))
}

async fn release_job(
    State(shared): State<Arc<Shared>>,
    Path(job_id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    shared.mutate(|world, now| world.release_job(job_id, now))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn runners(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.read(|world, now| {
        Json(Value::Array(
            world
                .runners
                .values()
                .map(|runner| json::runner(world, runner, now))
                .collect(),
        ))
    })
}

#[derive(Deserialize)]
struct Hook {
    url: String,
    secret: Option<String>,
}

async fn set_webhook(State(shared): State<Arc<Shared>>, Json(hook): Json<Hook>) -> StatusCode {
    shared.set_webhook(&hook.url, hook.secret.as_deref());
    StatusCode::NO_CONTENT
}

async fn deliveries(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let hooks = shared.webhooks.lock().expect("webhook lock");
    Json(Value::Array(
        hooks
            .deliveries()
            .iter()
            .map(|delivery| {
                json!({
                    "id": delivery.id,
                    "action": delivery.action,
                    "job_id": delivery.job_id,
                    "dropped": delivery.dropped,
                    "attempts": delivery.attempts.iter().map(|a| json!({
                        "status": a.status, "error": a.error, "redelivery": a.redelivery
                    })).collect::<Vec<_>>()
                })
            })
            .collect(),
    ))
}

async fn redeliver(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> StatusCode {
    if shared.redeliver(&id) {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn requests(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let log = shared.requests.lock().expect("log lock");
    Json(Value::Array(
        log.iter()
            .map(|r| json!({"method": r.method, "path": r.path, "token": r.token, "status": r.status, "at": json::time(r.at)}))
            .collect(),
    ))
}

#[derive(Deserialize)]
struct Token {
    token: String,
}

async fn add_token(State(shared): State<Arc<Shared>>, Json(body): Json<Token>) -> StatusCode {
    shared
        .credentials
        .lock()
        .expect("credentials lock")
        .add_pat(body.token);
    StatusCode::NO_CONTENT
}
