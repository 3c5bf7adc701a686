//! One transaction at a time, with everything that queued meanwhile in the
//! next one: a combining queue for blocking callers.
//!
//! A caller enqueues its job and takes the transaction lock. Whoever holds
//! the lock drains the queue (its own job and those that arrived while the
//! previous transaction ran) and runs them as one batch; a caller whose job
//! was taken by an earlier holder finds its result waiting when it gets the
//! lock. No thread is spawned and no job waits for a timer.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, MutexGuard};

/// Jobs of type `J` with results of type `R`, run in batches under one lock.
pub struct Combiner<J, R> {
    queue: Mutex<Vec<(J, Sender<R>)>>,
    transaction: Mutex<()>,
    max_batch: usize,
}

impl<J, R> Combiner<J, R> {
    /// At most `max_batch` jobs per batch (at least one).
    pub fn new(max_batch: usize) -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            transaction: Mutex::new(()),
            max_batch: max_batch.max(1),
        }
    }

    /// Runs `job`, in a batch passed to `run` with whatever else is queued.
    /// `run` gets the jobs in arrival order and returns one result each, in
    /// the same order.
    pub fn submit(&self, job: J, mut run_batch: impl FnMut(Vec<J>) -> Vec<R>) -> R {
        let (sender, receiver) = channel();
        self.queue
            .lock()
            .expect("batch queue poisoned")
            .push((job, sender));
        let _transaction = self.lock();
        loop {
            if let Ok(result) = receiver.try_recv() {
                return result;
            }
            // Our job is still queued: run the oldest batch (ours is in it
            // or in one of the next, which we run too while we hold the lock).
            let batch: Vec<(J, Sender<R>)> = {
                let mut queue = self.queue.lock().expect("batch queue poisoned");
                let take = queue.len().min(self.max_batch);
                queue.drain(..take).collect()
            };
            let (jobs, senders): (Vec<J>, Vec<Sender<R>>) = batch.into_iter().unzip();
            let results = run_batch(jobs);
            assert_eq!(results.len(), senders.len(), "one result per job");
            for (sender, result) in senders.into_iter().zip(results) {
                // A caller that gave up (panicked) has no receiver; fine.
                let _ = sender.send(result);
            }
        }
    }

    /// Jobs waiting for the next batch.
    pub fn queued(&self) -> usize {
        self.queue.lock().expect("batch queue poisoned").len()
    }

    /// Runs `exclusive` alone, between batches (for removals).
    pub fn exclusive<T>(&self, exclusive: impl FnOnce() -> T) -> T {
        let _transaction = self.lock();
        exclusive()
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // A panic in a batch poisons the lock; the backend's state is
        // checked by the next transaction anyway.
        self.transaction
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn a_lone_job_runs_in_a_batch_of_one() {
        let combiner = Combiner::new(8);
        let result = combiner.submit(3, |jobs| jobs.iter().map(|j| j * 2).collect());
        assert_eq!(result, 6);
    }

    #[test]
    fn jobs_queued_during_a_batch_run_together_in_the_next() {
        let combiner = Arc::new(Combiner::new(8));
        let batches = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let started = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        // The first job holds the lock until the others are queued.
        let first = {
            let (combiner, batches, started, release) = (
                combiner.clone(),
                batches.clone(),
                started.clone(),
                release.clone(),
            );
            std::thread::spawn(move || {
                combiner.submit(0, |jobs| {
                    started.wait();
                    release.wait();
                    batches.lock().unwrap().push(jobs.clone());
                    jobs
                })
            })
        };
        started.wait();
        let others: Vec<_> = (1..=3)
            .map(|n| {
                let (combiner, batches) = (combiner.clone(), batches.clone());
                std::thread::spawn(move || {
                    combiner.submit(n, |jobs| {
                        batches.lock().unwrap().push(jobs.clone());
                        jobs
                    })
                })
            })
            .collect();
        gha_testkit::eventually_blocking(
            "three queued jobs",
            std::time::Duration::from_secs(10),
            || (combiner.queue.lock().unwrap().len() == 3).then_some(()),
        )
        .unwrap();
        release.wait();
        assert_eq!(first.join().unwrap(), 0);
        let mut results: Vec<u32> = others.into_iter().map(|t| t.join().unwrap()).collect();
        results.sort();
        assert_eq!(results, vec![1, 2, 3]);
        let batches = batches.lock().unwrap();
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[0], vec![0]);
        let mut second = batches[1].clone();
        second.sort();
        assert_eq!(second, vec![1, 2, 3]);
    }

    #[test]
    fn batches_are_capped_and_the_caller_runs_until_its_job_is_done() {
        let combiner = Combiner::new(1);
        // An older job whose caller is gone.
        combiner.queue.lock().unwrap().push((7, channel().0));
        let mut seen = Vec::new();
        let result = combiner.submit(8, |jobs| {
            seen.push(jobs.clone());
            jobs
        });
        assert_eq!(result, 8);
        assert_eq!(seen, vec![vec![7], vec![8]]);
    }
}
