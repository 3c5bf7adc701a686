//! A bounded set of recently seen ids (webhook delivery ids): the oldest is
//! forgotten when it is full.

use std::collections::{HashSet, VecDeque};

/// The last `capacity` ids inserted.
#[derive(Debug)]
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Inserts `id`; false if it was already there.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        self.order.push_back(id.to_string());
        self.set.insert(id.to_string());
        true
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Forgets `id` (its processing failed and a redelivery must be
    /// handled).
    pub fn remove(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|known| known != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seen_id_is_refused_until_it_is_pushed_out() {
        let mut recent = RecentIds::new(2);
        assert!(recent.insert("a"));
        assert!(!recent.insert("a"));
        assert!(recent.insert("b"));
        assert!(recent.insert("c"));
        assert!(recent.insert("a"), "a was the oldest and is forgotten");
        recent.remove("a");
        assert!(recent.insert("a"));
    }
}
