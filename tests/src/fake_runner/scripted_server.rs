//! A scripted server of the runner protocol for the fake runner's tests, on
//! a free loopback port: each test scripts its answers, then reads what it
//! received. It raises a test's events (a signal while idle, while a job
//! runs) when the runner reaches that moment, so tests need no sleeps.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::github::runner_api::{
    AssignedJob, JobControl, JobOutcome, JobResult, SessionInfo, SessionRequest,
};

/// The one session id the server hands out.
pub(super) const SESSION: &str = "s-1";

/// When the server tells a running job it was cancelled.
#[derive(Debug, Default)]
pub(super) enum CancelWhen {
    #[default]
    Never,
    Always,
    /// Once this file exists: the step has got as far as writing it.
    FileExists(PathBuf),
}

/// The server's answers.
#[derive(Debug, Default)]
pub(super) struct Script {
    /// Answer 401 to `POST /sessions`.
    pub(super) refuse_credential: bool,
    /// Answer 503 to this many `POST /sessions` first.
    pub(super) unavailable_sessions: u32,
    /// Handed out in order, one per job poll.
    pub(super) jobs: VecDeque<AssignedJob>,
    pub(super) cancel: CancelWhen,
    /// Cancelled when the runner polls for a job and none is left: a signal
    /// while idle.
    pub(super) shutdown_when_idle: Option<CancellationToken>,
    /// Cancelled when a running job checks on itself: a signal mid-job.
    pub(super) shutdown_during_job: Option<CancellationToken>,
}

/// What the server received.
#[derive(Debug, Default, Clone)]
pub(super) struct Seen {
    pub(super) sessions: Vec<SessionRequest>,
    pub(super) completed: Vec<(u64, JobResult)>,
    pub(super) deleted: Vec<String>,
}

#[derive(Debug, Default)]
struct ServerState {
    script: Script,
    seen: Seen,
}

type Shared = Arc<Mutex<ServerState>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, ServerState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The scripted server, stopped on drop.
pub(super) struct ScriptedServer {
    /// `http://127.0.0.1:PORT/_runner`.
    pub(super) url: String,
    state: Shared,
    task: JoinHandle<()>,
}

impl ScriptedServer {
    pub(super) async fn start(script: Script) -> Self {
        let state: Shared = Arc::new(Mutex::new(ServerState {
            script,
            seen: Seen::default(),
        }));
        let router = Router::new()
            .route("/_runner/sessions", post(create_session))
            .route("/_runner/sessions/{id}", delete(delete_session))
            .route("/_runner/sessions/{id}/job", get(next_job))
            .route("/_runner/sessions/{id}/jobs/{job_id}", get(job_control))
            .route(
                "/_runner/sessions/{id}/jobs/{job_id}/complete",
                post(complete),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/_runner", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { url, state, task }
    }

    pub(super) fn seen(&self) -> Seen {
        lock(&self.state).seen.clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unknown_session() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"message": "no such session"})),
    )
        .into_response()
}

async fn create_session(
    State(state): State<Shared>,
    Json(request): Json<SessionRequest>,
) -> Response {
    let mut state = lock(&state);
    state.seen.sessions.push(request.clone());
    if state.script.unavailable_sessions > 0 {
        state.script.unavailable_sessions -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if state.script.refuse_credential {
        let message = serde_json::json!({"message": "credential already used"});
        return (StatusCode::UNAUTHORIZED, Json(message)).into_response();
    }
    let (runner_name, ephemeral) = match request {
        SessionRequest::Jit { .. } => ("jit-runner".to_owned(), true),
        SessionRequest::Registration {
            name, ephemeral, ..
        } => (name, ephemeral),
    };
    let info = SessionInfo {
        session_id: SESSION.into(),
        runner_id: 7,
        runner_name,
        ephemeral,
    };
    (StatusCode::CREATED, Json(info)).into_response()
}

#[derive(serde::Deserialize)]
struct WaitQuery {
    wait_ms: u64,
}

async fn next_job(
    State(state): State<Shared>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<WaitQuery>,
) -> Response {
    if id != SESSION {
        return unknown_session();
    }
    {
        let mut state = lock(&state);
        if let Some(job) = state.script.jobs.pop_front() {
            return Json(job).into_response();
        }
        if let Some(shutdown) = &state.script.shutdown_when_idle {
            shutdown.cancel();
        }
    }
    // A long poll with nothing to hand out answers when its wait is over.
    tokio::time::sleep(Duration::from_millis(query.wait_ms)).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn job_control(
    State(state): State<Shared>,
    UrlPath((id, _job_id)): UrlPath<(String, u64)>,
) -> Response {
    if id != SESSION {
        return unknown_session();
    }
    let state = lock(&state);
    if let Some(shutdown) = &state.script.shutdown_during_job {
        shutdown.cancel();
    }
    let cancel_requested = match &state.script.cancel {
        CancelWhen::Never => false,
        CancelWhen::Always => true,
        CancelWhen::FileExists(path) => path.exists(),
    };
    Json(JobControl { cancel_requested }).into_response()
}

async fn complete(
    State(state): State<Shared>,
    UrlPath((id, job_id)): UrlPath<(String, u64)>,
    Json(outcome): Json<JobOutcome>,
) -> Response {
    if id != SESSION {
        return unknown_session();
    }
    lock(&state).seen.completed.push((job_id, outcome.result));
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_session(State(state): State<Shared>, UrlPath(id): UrlPath<String>) -> Response {
    if id != SESSION {
        return unknown_session();
    }
    lock(&state).seen.deleted.push(id);
    StatusCode::NO_CONTENT.into_response()
}
