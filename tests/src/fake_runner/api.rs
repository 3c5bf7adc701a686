//! The runner side of the emulator's runner protocol
//! ([`crate::github::runner_api`]): one call per endpoint, each retried on
//! transient failures (connection refused or reset, timeouts, 5xx) a bounded
//! number of times with a doubling backoff.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::{FakeRunnerError, Retry};
use crate::github::runner_api::{
    AssignedJob, JobControl, JobOutcome, JobResult, SessionInfo, SessionRequest,
};

/// How long a call other than the long poll may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// What a long poll may take beyond the wait it asked the server for.
const LONG_POLL_SLACK: Duration = Duration::from_secs(10);
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A client of the runner protocol at one `server_url`.
pub(super) struct RunnerApi {
    http: reqwest::Client,
    /// `http://HOST:PORT/_runner`, without a trailing slash.
    base: String,
    retry: Retry,
}

impl RunnerApi {
    pub(super) fn new(server_url: &str, retry: Retry) -> Result<Self, FakeRunnerError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(FakeRunnerError::HttpClient)?;
        Ok(Self {
            http,
            base: server_url.trim_end_matches('/').to_owned(),
            retry,
        })
    }

    /// `POST /sessions`: connects the runner.
    pub(super) async fn create_session(
        &self,
        request: &SessionRequest,
    ) -> Result<SessionInfo, FakeRunnerError> {
        const WHAT: &str = "connecting";
        let url = format!("{}/sessions", self.base);
        let response = self
            .send(WHAT, || {
                self.http.post(&url).json(request).timeout(CALL_TIMEOUT)
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => json(WHAT, response).await,
            StatusCode::UNAUTHORIZED => Err(FakeRunnerError::CredentialRefused {
                message: message(response).await,
            }),
            _ => Err(rejected(WHAT, response).await),
        }
    }

    /// `GET /sessions/{id}/job?wait_ms=N`: the next job, or `None` if none
    /// came within `wait`.
    pub(super) async fn next_job(
        &self,
        session_id: &str,
        wait: Duration,
    ) -> Result<Option<AssignedJob>, FakeRunnerError> {
        const WHAT: &str = "waiting for a job";
        let url = format!(
            "{}/sessions/{session_id}/job?wait_ms={}",
            self.base,
            wait.as_millis()
        );
        let response = self
            .send(WHAT, || self.http.get(&url).timeout(wait + LONG_POLL_SLACK))
            .await?;
        match response.status() {
            StatusCode::OK => json(WHAT, response).await.map(Some),
            StatusCode::NO_CONTENT => Ok(None),
            _ => Err(rejected(WHAT, response).await),
        }
    }

    /// `GET /sessions/{id}/jobs/{job_id}`: whether the job was cancelled.
    pub(super) async fn job_control(
        &self,
        session_id: &str,
        job_id: u64,
    ) -> Result<JobControl, FakeRunnerError> {
        const WHAT: &str = "checking on the job";
        let url = format!("{}/sessions/{session_id}/jobs/{job_id}", self.base);
        let response = self
            .send(WHAT, || self.http.get(&url).timeout(CALL_TIMEOUT))
            .await?;
        match response.status() {
            StatusCode::OK => json(WHAT, response).await,
            _ => Err(rejected(WHAT, response).await),
        }
    }

    /// `POST /sessions/{id}/jobs/{job_id}/complete`: reports the job's result.
    pub(super) async fn complete(
        &self,
        session_id: &str,
        job_id: u64,
        result: JobResult,
    ) -> Result<(), FakeRunnerError> {
        const WHAT: &str = "reporting the job's result";
        let url = format!("{}/sessions/{session_id}/jobs/{job_id}/complete", self.base);
        let outcome = JobOutcome { result };
        let response = self
            .send(WHAT, || {
                self.http.post(&url).json(&outcome).timeout(CALL_TIMEOUT)
            })
            .await?;
        expect_no_content(WHAT, response).await
    }

    /// `DELETE /sessions/{id}`: the runner goes offline.
    pub(super) async fn delete_session(&self, session_id: &str) -> Result<(), FakeRunnerError> {
        const WHAT: &str = "disconnecting";
        let url = format!("{}/sessions/{session_id}", self.base);
        let response = self
            .send(WHAT, || self.http.delete(&url).timeout(CALL_TIMEOUT))
            .await?;
        expect_no_content(WHAT, response).await
    }

    /// Sends the request `build` makes until it gets an answer that is not a
    /// server error, at most `retry.attempts` times.
    async fn send(
        &self,
        what: &'static str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, FakeRunnerError> {
        let attempts = self.retry.attempts.max(1);
        let mut backoff = self.retry.backoff;
        let mut attempt = 1;
        loop {
            let last = match build().send().await {
                Ok(response) if !response.status().is_server_error() => return Ok(response),
                Ok(response) => format!("the server answered {}", response.status()),
                Err(err) if err.is_builder() => return Err(FakeRunnerError::HttpClient(err)),
                Err(err) => error_chain(&err),
            };
            if attempt >= attempts {
                return Err(FakeRunnerError::Unreachable {
                    what,
                    attempts,
                    last,
                });
            }
            tracing::warn!(what, attempt, error = %last, ?backoff, "transient failure, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }
}

/// The body of a 2xx answer as `T`.
async fn json<T: DeserializeOwned>(
    what: &'static str,
    response: Response,
) -> Result<T, FakeRunnerError> {
    response
        .json()
        .await
        .map_err(|source| FakeRunnerError::BadAnswer { what, source })
}

async fn expect_no_content(what: &'static str, response: Response) -> Result<(), FakeRunnerError> {
    if response.status() == StatusCode::NO_CONTENT {
        Ok(())
    } else {
        Err(rejected(what, response).await)
    }
}

async fn rejected(what: &'static str, response: Response) -> FakeRunnerError {
    FakeRunnerError::Rejected {
        what,
        status: response.status().as_u16(),
        message: message(response).await,
    }
}

/// The `message` of an error body (`{"message": "..."}`), else the body.
async fn message(response: Response) -> String {
    let body = response.text().await.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value.get("message")?.as_str().map(str::to_owned))
        .unwrap_or(body)
}

/// `err` with its causes: reqwest's own message says little ("error sending
/// request"); the cause says "connection refused".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
