//! Answers by request id: requests answered later (HTTP `wait=false`,
//! polled at `GET /requests/{id}`) and NATS requests, whose redeliveries
//! are answered from the record instead of being unpacked again.

use std::sync::Arc;

use super::{Outcome, Prepared, RequestError, Service, now_ms, status_name};
use crate::store::Answer;

/// Where a request id stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    Finished(Answer),
    Unknown,
}

impl Service {
    /// Completes `prepared` in the background, answering under `request_id`.
    pub fn submit(self: &Arc<Self>, request_id: String, prepared: Prepared) {
        self.pending
            .lock()
            .expect("pending lock poisoned")
            .insert(request_id.clone());
        let service = self.clone();
        tokio::spawn(async move {
            let source = prepared.source.clone();
            let result = service.complete(prepared).await;
            service.count(&result);
            if let Err(err) = service.record_answer(&request_id, &source, &result) {
                tracing::error!(request_id, error = %err, "saving the answer failed");
            }
            service
                .pending
                .lock()
                .expect("pending lock poisoned")
                .remove(&request_id);
        });
    }

    /// Where `request_id` stands.
    pub fn request_state(&self, request_id: &str) -> RequestState {
        if let Some(answer) = self.store.answer(request_id) {
            return RequestState::Finished(answer);
        }
        if self
            .pending
            .lock()
            .expect("pending lock poisoned")
            .contains(request_id)
        {
            return RequestState::Pending;
        }
        RequestState::Unknown
    }

    /// Keeps the answer to `request_id` (a transient failure is not kept:
    /// a redelivery should try again).
    pub fn record_answer(
        &self,
        request_id: &str,
        source: &str,
        result: &Result<Outcome, RequestError>,
    ) -> Result<Answer, RequestError> {
        let answer = Answer {
            request_id: request_id.to_owned(),
            source: source.to_owned(),
            status: match result {
                Ok(outcome) => status_name(outcome.status).to_owned(),
                Err(_) => "failed".to_owned(),
            },
            digest: result.as_ref().ok().map(|o| o.record.digest.clone()),
            error: result.as_ref().err().map(|e| e.to_string()),
            finished_unix_ms: now_ms(),
        };
        if matches!(result, Err(err) if err.is_transient()) {
            return Ok(answer);
        }
        self.store.update(|records| {
            records
                .answers
                .insert(request_id.to_owned(), answer.clone())
        })?;
        Ok(answer)
    }
}
