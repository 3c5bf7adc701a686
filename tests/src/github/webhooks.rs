//! `workflow_job` webhook deliveries: signed like GitHub's, sent in order,
//! with faults a test can ask for (drop, duplicate, reorder) and
//! redelivery under the same delivery id.
//!
//! Headers, as GitHub sends them: `X-GitHub-Event`, `X-GitHub-Delivery`
//! (a GUID), `X-GitHub-Hook-ID`, `X-GitHub-Hook-Installation-Target-Type`
//! and `-ID`, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`
//! (when a secret is set), `User-Agent: GitHub-Hookshot/<id>`.
//! Source: docs.github.com, "Webhook events and payloads" and "Validating
//! webhook deliveries".

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::world::WebhookEvent;

/// `sha256=<hex>`: the `X-Hub-Signature-256` of `body` under `secret`.
pub fn signature_256(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where deliveries go.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// `None` sends no signature headers, as GitHub does without a secret.
    pub secret: Option<String>,
    pub hook_id: u64,
    /// `repository` or `organization`, with its id.
    pub target_type: String,
    pub target_id: u64,
}

/// A fault applied to the next delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryFault {
    /// Never sent (recorded as dropped).
    Drop,
    /// Sent twice, same delivery id.
    Duplicate,
    /// Sent after the delivery that follows it.
    Reorder,
}

/// One send of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's status, or `None` if the request failed.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub redelivery: bool,
}

/// A webhook delivery and what became of it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub action: &'static str,
    pub job_id: u64,
    pub body: String,
    pub dropped: bool,
    pub attempts: Vec<Attempt>,
}

/// Deliveries, their queue and the faults to apply.
#[derive(Default)]
pub struct Webhooks {
    pub config: Option<WebhookConfig>,
    deliveries: Vec<Delivery>,
    queue: VecDeque<(usize, bool)>,
    held: Option<usize>,
    faults: VecDeque<DeliveryFault>,
}

impl Webhooks {
    /// Records events as deliveries and queues them (only while a webhook
    /// is configured, as on GitHub).
    pub fn enqueue(&mut self, events: Vec<WebhookEvent>) {
        if self.config.is_none() {
            return;
        }
        for event in events {
            let index = self.deliveries.len();
            self.deliveries.push(Delivery {
                id: uuid::Uuid::new_v4().to_string(),
                action: event.action,
                job_id: event.job_id,
                body: event.payload.to_string(),
                dropped: false,
                attempts: Vec::new(),
            });
            self.queue.push_back((index, false));
        }
    }

    /// Applies `fault` to the next delivery taken from the queue.
    pub fn inject(&mut self, fault: DeliveryFault) {
        self.faults.push_back(fault);
    }

    /// Queues delivery `id` again, same id and body.
    pub fn redeliver(&mut self, id: &str) -> bool {
        match self.deliveries.iter().position(|d| d.id == id) {
            Some(index) => {
                self.queue.push_back((index, true));
                true
            }
            None => false,
        }
    }

    /// Every delivery so far, in the order they were created.
    pub fn deliveries(&self) -> &[Delivery] {
        &self.deliveries
    }

    /// What to send now, in order: `(index, redelivery)`.
    pub fn plan(&mut self) -> Vec<(usize, bool)> {
        // A held (reordered) delivery waits for the one after it.
        let Some((index, redelivery)) = self.queue.pop_front() else {
            return Vec::new();
        };
        let fault = if redelivery {
            None
        } else {
            self.faults.pop_front()
        };
        let mut sends = match fault {
            Some(DeliveryFault::Drop) => {
                self.deliveries[index].dropped = true;
                Vec::new()
            }
            Some(DeliveryFault::Duplicate) => vec![(index, redelivery), (index, redelivery)],
            Some(DeliveryFault::Reorder) => {
                self.held = Some(index);
                return Vec::new();
            }
            None => vec![(index, redelivery)],
        };
        if let Some(held) = self.held.take() {
            sends.push((held, false));
        }
        sends
    }

    /// True when nothing is queued (a reordered delivery may still be held).
    pub fn idle(&self) -> bool {
        self.queue.is_empty()
    }

    fn record(&mut self, index: usize, attempt: Attempt) {
        self.deliveries[index].attempts.push(attempt);
    }
}

/// Sends queued deliveries until `shutdown`, one at a time, in order.
pub async fn deliver(
    webhooks: Arc<Mutex<Webhooks>>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client builds");
    loop {
        let Some((config, sends)) = next_sends(&webhooks) else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wake.notified() => continue,
            }
        };
        if sends.is_empty() {
            // A fault may have consumed a delivery with more queued behind it.
            let idle = webhooks.lock().expect("webhook lock").idle();
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = wake.notified() => {}
                }
            }
            continue;
        }
        for (index, redelivery, delivery) in sends {
            let attempt = send(&client, &config, &delivery, redelivery).await;
            webhooks
                .lock()
                .expect("webhook lock")
                .record(index, attempt);
        }
    }
}

/// A delivery to send now: its index, whether it is a redelivery, and it.
type Send = (usize, bool, Delivery);

/// The configuration and the deliveries to send now; `None` while no
/// webhook is configured.
fn next_sends(webhooks: &Mutex<Webhooks>) -> Option<(WebhookConfig, Vec<Send>)> {
    let mut hooks = webhooks.lock().expect("webhook lock");
    let config = hooks.config.clone()?;
    let sends = hooks
        .plan()
        .into_iter()
        .map(|(index, redelivery)| (index, redelivery, hooks.deliveries[index].clone()))
        .collect();
    Some((config, sends))
}

async fn send(
    client: &reqwest::Client,
    config: &WebhookConfig,
    delivery: &Delivery,
    redelivery: bool,
) -> Attempt {
    let mut request = client
        .post(&config.url)
        .header("Content-Type", "application/json")
        .header(
            "User-Agent",
            format!("GitHub-Hookshot/{:07x}", config.hook_id),
        )
        .header("X-GitHub-Event", "workflow_job")
        .header("X-GitHub-Delivery", &delivery.id)
        .header("X-GitHub-Hook-ID", config.hook_id.to_string())
        .header(
            "X-GitHub-Hook-Installation-Target-Type",
            &config.target_type,
        )
        .header(
            "X-GitHub-Hook-Installation-Target-ID",
            config.target_id.to_string(),
        )
        .body(delivery.body.clone());
    if let Some(secret) = &config.secret {
        request = request.header(
            "X-Hub-Signature-256",
            signature_256(secret.as_bytes(), delivery.body.as_bytes()),
        );
    }
    match request.send().await {
        Ok(response) => Attempt {
            status: Some(response.status().as_u16()),
            error: None,
            redelivery,
        },
        Err(err) => Attempt {
            status: None,
            error: Some(err.to_string()),
            redelivery,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's published test vector ("Validating webhook deliveries").
    #[test]
    fn signature_matches_githubs_test_vector() {
        assert_eq!(
            signature_256(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    fn hooks_with(n: u64) -> Webhooks {
        let mut hooks = Webhooks {
            config: Some(WebhookConfig {
                url: "http://127.0.0.1:1/".into(),
                secret: None,
                hook_id: 1,
                target_type: "repository".into(),
                target_id: 1,
            }),
            ..Webhooks::default()
        };
        hooks.enqueue(
            (1..=n)
                .map(|job_id| WebhookEvent {
                    action: "queued",
                    job_id,
                    payload: serde_json::json!({"job": job_id}),
                })
                .collect(),
        );
        hooks
    }

    fn drain(hooks: &mut Webhooks) -> Vec<usize> {
        let mut order = Vec::new();
        for _ in 0..10 {
            order.extend(hooks.plan().into_iter().map(|(index, _)| index));
        }
        order
    }

    #[test]
    fn faults_drop_duplicate_and_reorder_the_next_delivery() {
        let mut hooks = hooks_with(4);
        hooks.inject(DeliveryFault::Drop);
        hooks.inject(DeliveryFault::Duplicate);
        hooks.inject(DeliveryFault::Reorder);
        assert_eq!(drain(&mut hooks), [1, 1, 3, 2]);
        assert!(hooks.deliveries()[0].dropped);
    }

    #[test]
    fn redelivery_reuses_the_delivery_id() {
        let mut hooks = hooks_with(1);
        assert_eq!(hooks.plan(), [(0, false)]);
        let id = hooks.deliveries()[0].id.clone();
        assert!(hooks.redeliver(&id));
        assert_eq!(hooks.plan(), [(0, true)]);
        assert!(!hooks.redeliver("no-such-id"));
    }

    #[test]
    fn without_a_webhook_nothing_is_recorded() {
        let mut hooks = Webhooks::default();
        hooks.enqueue(vec![WebhookEvent {
            action: "queued",
            job_id: 1,
            payload: serde_json::Value::Null,
        }]);
        assert!(hooks.deliveries().is_empty());
    }
}
