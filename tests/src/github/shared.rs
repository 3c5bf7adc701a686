//! The emulator's state behind its HTTP faces, and the one way to change
//! the world: [`Shared::mutate`], which applies due timeouts first and
//! afterwards queues the webhooks and wakes long-polling runners.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{Notify, watch};

use super::auth::Credentials;
use super::faults::Faults;
use super::model::Timestamp;
use super::ratelimit::Limiter;
use super::webhooks::{WebhookConfig, Webhooks};
use super::world::World;

/// One request the REST API received, for tests to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Path and query, e.g. `/repos/a/b/actions/runs?status=queued`.
    pub path: String,
    /// The token from `Authorization`, if any.
    pub token: Option<String>,
    pub status: u16,
    /// When the answer (or the drop) happened.
    pub at: Timestamp,
}

/// Everything the handlers share.
pub struct Shared {
    pub world: Mutex<World>,
    pub credentials: Mutex<Credentials>,
    pub limiter: Mutex<Limiter>,
    pub faults: Mutex<Faults>,
    pub webhooks: Arc<Mutex<Webhooks>>,
    /// Wakes the delivery task.
    pub webhook_wake: Arc<Notify>,
    /// Bumped whenever jobs change status (runners long-poll on it).
    pub version: watch::Sender<u64>,
    pub requests: Mutex<Vec<RequestRecord>>,
}

impl Shared {
    pub fn new(world: World, credentials: Credentials, limiter: Limiter) -> Self {
        Self {
            world: Mutex::new(world),
            credentials: Mutex::new(credentials),
            limiter: Mutex::new(limiter),
            faults: Mutex::new(Faults::default()),
            webhooks: Arc::new(Mutex::new(Webhooks::default())),
            webhook_wake: Arc::new(Notify::new()),
            version: watch::Sender::new(0),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Runs `change` on the world at the current time, after applying the
    /// timeouts due; then queues its webhooks and wakes waiters.
    pub fn mutate<T>(&self, change: impl FnOnce(&mut World, Timestamp) -> T) -> T {
        let now = Utc::now();
        let (result, events) = {
            let mut world = self.world.lock().expect("world lock");
            world.tick(now);
            let result = change(&mut world, now);
            (result, world.take_events())
        };
        if !events.is_empty() {
            self.webhooks.lock().expect("webhook lock").enqueue(events);
            self.webhook_wake.notify_one();
            self.version.send_modify(|version| *version += 1);
        }
        result
    }

    /// Sends `workflow_job` webhooks to `url`, signed with `secret` if any.
    pub fn set_webhook(&self, url: &str, secret: Option<&str>) {
        self.webhooks.lock().expect("webhook lock").config = Some(WebhookConfig {
            url: url.into(),
            secret: secret.map(str::to_string),
            hook_id: 424_242,
            target_type: "repository".into(),
            target_id: 1,
        });
        self.webhook_wake.notify_one();
    }

    /// Queues delivery `id` again (same id and body); false if unknown.
    pub fn redeliver(&self, id: &str) -> bool {
        let queued = self.webhooks.lock().expect("webhook lock").redeliver(id);
        self.webhook_wake.notify_one();
        queued
    }

    /// Reads the world (applying due timeouts first).
    pub fn read<T>(&self, look: impl FnOnce(&World, Timestamp) -> T) -> T {
        self.mutate(|world, now| look(world, now))
    }
}
