//! The webhook endpoint: verifies `X-Hub-Signature-256` over the raw body,
//! reads `workflow_job` events, applies the job policy and publishes
//! `QueuedJob` / `JobStatusChange` to JetStream, answering well within
//! GitHub's 10 s.
//!
//! | request | answer |
//! |---|---|
//! | bad or missing signature | 401, nothing published |
//! | body over the limit | 413 |
//! | `ping` | 200 |
//! | another event, a job that is not demand, a refused job | 202, nothing published |
//! | a delivery id seen already | 202, nothing published |
//! | published (or already in JetStream) | 202 |
//! | NATS or GitHub unavailable | 503 (the reconciliation poll catches up) |
//!
//! Whether a queued job builds a fork's code is read from its run; a run
//! whose `head_repository` is null (a deleted fork) or a lookup that says
//! nothing (a 304) counts as a fork: the check fails closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use gha_proto::Contract;
use gha_proto::v1::JobSource;

use crate::metrics::PollerMetrics;
use crate::observe::{Observation, observe};
use crate::policy::{JobPolicy, Refusal};
use crate::recent::RecentIds;
use crate::webhook_signature::WebhookSecrets;
use gha_github::types::{WorkflowJobEvent, WorkflowRun};
use gha_github::{Fetched, GitHubClient};

/// Webhook deliveries remembered to skip redeliveries early.
const RECENT_DELIVERIES: usize = 10_000;
/// Runs whose fork status is remembered.
const KNOWN_RUNS: usize = 10_000;

/// What the endpoint needs.
pub struct WebhookReceiver {
    pub secrets: WebhookSecrets,
    pub policy: JobPolicy,
    pub contract: Contract,
    /// Look up a job's run to tell whether it builds a fork's code: the
    /// token's client, or one per app installation.
    pub clients: Vec<Arc<GitHubClient>>,
    pub metrics: PollerMetrics,
    recent: Mutex<RecentIds>,
    run_is_fork: Mutex<HashMap<i64, bool>>,
}

type Answer = (StatusCode, String);

impl WebhookReceiver {
    pub fn new(
        secrets: WebhookSecrets,
        policy: JobPolicy,
        contract: Contract,
        clients: Vec<Arc<GitHubClient>>,
        metrics: PollerMetrics,
    ) -> Self {
        Self {
            secrets,
            policy,
            contract,
            clients,
            metrics,
            recent: Mutex::new(RecentIds::new(RECENT_DELIVERIES)),
            run_is_fork: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoint at `path`, refusing bodies over `max_body` bytes.
    pub fn router(self: Arc<Self>, path: &str, max_body: usize) -> Router {
        Router::new()
            .route(path, post(receive))
            .layer(DefaultBodyLimit::max(max_body))
            .with_state(self)
    }

    fn answer(&self, status: StatusCode, outcome: &str, text: impl Into<String>) -> Answer {
        self.metrics.delivery(outcome);
        (status, text.into())
    }

    async fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        if let Err(err) = self.secrets.verify(header("x-hub-signature-256"), body) {
            tracing::warn!(error = %err, delivery = header("x-github-delivery"), "webhook refused");
            let outcome = format!("bad_signature_{}", err.metric_label());
            return self.answer(StatusCode::UNAUTHORIZED, &outcome, err.to_string());
        }
        match header("x-github-event") {
            Some("workflow_job") => {}
            Some("ping") => return self.answer(StatusCode::OK, "ping", "pong"),
            other => {
                let text = format!("ignored event {}", other.unwrap_or("(none)"));
                return self.answer(StatusCode::ACCEPTED, "ignored_event", text);
            }
        }
        let delivery = header("x-github-delivery").unwrap_or_default().to_string();
        if !delivery.is_empty() && !self.recent.lock().expect("recent lock").insert(&delivery) {
            return self.answer(StatusCode::ACCEPTED, "duplicate_delivery", "seen already");
        }
        let answer = self.process(body).await;
        if answer.0 == StatusCode::SERVICE_UNAVAILABLE {
            // Let a redelivery try again.
            self.recent.lock().expect("recent lock").remove(&delivery);
        }
        answer
    }

    async fn process(&self, body: &[u8]) -> Answer {
        let event: WorkflowJobEvent = match serde_json::from_slice(body) {
            Ok(event) => event,
            Err(err) => {
                return self.answer(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    format!("not a workflow_job payload: {err}"),
                );
            }
        };
        let job = &event.workflow_job;
        if let Err(refusal) = self.policy.check_labels(&job.labels) {
            return self.refuse(job.id, &refusal);
        }
        let installation = event.installation.as_ref().map_or(0, |i| i.id);
        let now = chrono::Utc::now().timestamp_millis();
        match observe(
            job,
            &event.repository,
            installation,
            JobSource::Webhook,
            now,
        ) {
            Observation::Ignored(why) => self.answer(StatusCode::ACCEPTED, "not_demand", why),
            Observation::Queued(queued) => {
                if !self.policy.allow_forks {
                    match self
                        .is_from_fork(&event.repository.full_name, job.run_id, installation)
                        .await
                    {
                        Ok(from_fork) => {
                            if let Err(refusal) = self.policy.check_fork(from_fork) {
                                return self.refuse(job.id, &refusal);
                            }
                        }
                        Err(err) => {
                            tracing::warn!(job_id = job.id, error = %err, "cannot tell whether the run is a fork's");
                            return self.answer(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "github_unavailable",
                                err.to_string(),
                            );
                        }
                    }
                }
                self.publish(&queued, "queued").await
            }
            Observation::Changed(change) => self.publish(&change, "status").await,
        }
    }

    fn refuse(&self, job_id: i64, refusal: &Refusal) -> Answer {
        tracing::info!(job_id, reason = %refusal, "job refused by policy");
        self.metrics.refusal(refusal.metric_label());
        self.answer(StatusCode::ACCEPTED, "refused", refusal.to_string())
    }

    async fn publish<M: gha_proto::Envelope>(&self, message: &M, kind: &str) -> Answer {
        match self.contract.publish(message).await {
            Ok(published) => {
                self.metrics
                    .publication("webhook", kind, published.duplicate);
                let text = if published.duplicate {
                    "duplicate"
                } else {
                    "published"
                };
                self.answer(StatusCode::ACCEPTED, "published", text)
            }
            Err(err) => {
                tracing::error!(error = %err, "publishing to JetStream failed");
                self.answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "nats_unavailable",
                    err.to_string(),
                )
            }
        }
    }

    /// The installation's client, or else the token's (a token sees every
    /// installation's repositories).
    fn client_for(&self, installation: i64) -> Option<&Arc<GitHubClient>> {
        self.clients
            .iter()
            .find(|client| {
                client
                    .installation()
                    .is_some_and(|id| id as i64 == installation)
            })
            .or_else(|| {
                self.clients
                    .iter()
                    .find(|client| client.installation().is_none())
            })
    }

    async fn is_from_fork(
        &self,
        repository: &str,
        run_id: i64,
        installation: i64,
    ) -> Result<bool, gha_github::GitHubError> {
        if let Some(known) = self
            .run_is_fork
            .lock()
            .expect("fork cache lock")
            .get(&run_id)
        {
            return Ok(*known);
        }
        let path = format!("/repos/{repository}/actions/runs/{run_id}");
        let client =
            self.client_for(installation)
                .ok_or_else(|| gha_github::GitHubError::NotFound {
                    path: format!("{path} (no credentials for installation {installation})"),
                })?;
        let fork = match client.get::<WorkflowRun>(&path, None).await? {
            Fetched::Fresh { value, .. } => value.is_from_fork(),
            // Nothing was asked conditionally, so nothing is known: fail
            // closed, unremembered (the poll reads the run's listing and
            // decides again).
            Fetched::NotModified => return Ok(true),
        };
        let mut cache = self.run_is_fork.lock().expect("fork cache lock");
        if cache.len() >= KNOWN_RUNS {
            cache.clear();
        }
        cache.insert(run_id, fork);
        Ok(fork)
    }
}

async fn receive(
    State(receiver): State<Arc<WebhookReceiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    receiver.handle(&headers, &body).await
}
