//! Removing images: on request (`DELETE`), and when their TTL runs out (the
//! expiry sweep, a jittered periodic loop).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::{RequestError, Service, now_ms};
use crate::image::Digest;

/// `interval` give or take a tenth, different per process start, so
/// several unpackers on one host do not sweep in step.
fn jittered(interval: Duration) -> Duration {
    let mut hasher = DefaultHasher::new();
    (std::process::id(), std::time::SystemTime::now()).hash(&mut hasher);
    let tenth = interval.as_millis() as u64 / 10;
    if tenth == 0 {
        return interval;
    }
    let offset = hasher.finish() % (2 * tenth + 1);
    interval + Duration::from_millis(offset) - Duration::from_millis(tenth)
}

impl Service {
    /// Removes the image `digest`; `false` when there was none.
    pub async fn delete(&self, digest: &Digest) -> Result<bool, RequestError> {
        let _removing = self.removing.write().await;
        if self.store.image(digest).is_none() && !self.publisher.contains(digest) {
            return Ok(false);
        }
        if self.in_flight().contains(digest) {
            return Err(RequestError::BadRequest(format!(
                "{digest} is being unpacked; delete it when that is done"
            )));
        }
        self.remove(vec![digest.clone()], "deleted").await?;
        Ok(true)
    }

    /// Removes every image whose TTL ran out by `now_ms`; returns how many.
    pub async fn sweep(&self, now_ms: i64) -> Result<usize, RequestError> {
        let _removing = self.removing.write().await;
        let in_flight = self.in_flight();
        let expired: Vec<Digest> = self
            .store
            .snapshot()
            .expired(now_ms)
            .into_iter()
            .filter(|digest| !in_flight.contains(digest))
            .collect();
        let count = expired.len();
        if count > 0 {
            tracing::info!(images = count, "removing expired images");
            self.remove(expired, "expired").await?;
        }
        self.store.update(|records| records.prune_answers(now_ms))?;
        Ok(count)
    }

    /// Removes `digests` in one publisher call, then their records (the
    /// caller holds `removing`).
    async fn remove(&self, digests: Vec<Digest>, reason: &str) -> Result<(), RequestError> {
        let publisher = self.publisher.clone();
        let removing = digests.clone();
        tokio::task::spawn_blocking(move || publisher.remove(&removing))
            .await
            .map_err(|err| RequestError::Publish(format!("removal panicked: {err}")))??;
        let count = self.store.update(|records| {
            for digest in &digests {
                records.images.remove(digest);
            }
            records.images.len()
        })?;
        self.metrics.published_images.set(count as i64);
        self.metrics.removal(reason, digests.len());
        Ok(())
    }

    /// Sweeps every `interval` (jittered) until `shutdown`; a failed sweep
    /// is logged and the next one tries again.
    pub async fn sweep_loop(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(jittered(interval));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(err) = self.sweep(now_ms()).await {
                tracing::error!(error = %err, "expiry sweep failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth() {
        for _ in 0..100 {
            let value = jittered(Duration::from_secs(60));
            assert!(value >= Duration::from_secs(54) && value <= Duration::from_secs(66));
        }
        assert_eq!(jittered(Duration::from_millis(5)), Duration::from_millis(5));
    }
}
