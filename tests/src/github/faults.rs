//! Faults a test injects into the REST API: error statuses on chosen
//! endpoints, latency, dropped connections, and secondary-limit storms (the
//! storm itself lives in the rate limiter).

use std::time::Duration;

/// What happens to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (e.g. 500, 502, 503) and GitHub's error body.
    Status(u16),
    /// Close the connection without answering.
    Drop,
    /// Answer normally, this much later.
    Latency(Duration),
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// `None` = every method.
    pub method: Option<String>,
    /// A path prefix, e.g. `/repos/acme/widgets/actions/runs`; empty = all.
    pub path_prefix: String,
    pub kind: FaultKind,
    /// How many more requests it hits; `None` = until cleared.
    pub remaining: Option<u32>,
}

impl Fault {
    /// `kind` on requests whose path starts with `path_prefix`, `times`
    /// times (`None` = until cleared).
    pub fn on(path_prefix: &str, kind: FaultKind, times: Option<u32>) -> Self {
        Self {
            method: None,
            path_prefix: path_prefix.into(),
            kind,
            remaining: times,
        }
    }

    /// Only requests of this method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining != Some(0)
            && self.method.as_deref().is_none_or(|m| m == method)
            && path.starts_with(&self.path_prefix)
    }
}

/// The faults in force.
#[derive(Debug, Default)]
pub struct Faults {
    faults: Vec<Fault>,
}

impl Faults {
    pub fn add(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    /// The faults that hit this request, using up one of each's count.
    pub fn hit(&mut self, method: &str, path: &str) -> Vec<FaultKind> {
        let mut kinds = Vec::new();
        for fault in &mut self.faults {
            if fault.matches(method, path) {
                if let Some(remaining) = &mut fault.remaining {
                    *remaining -= 1;
                }
                kinds.push(fault.kind);
            }
        }
        self.faults.retain(|fault| fault.remaining != Some(0));
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_fault_hits_exactly_its_count_of_matching_requests() {
        let mut faults = Faults::default();
        faults.add(
            Fault::on("/repos/a/b/actions/runs", FaultKind::Status(502), Some(2)).method("get"),
        );
        assert!(faults.hit("POST", "/repos/a/b/actions/runs").is_empty());
        assert!(faults.hit("GET", "/rate_limit").is_empty());
        assert_eq!(
            faults.hit("GET", "/repos/a/b/actions/runs/1/jobs"),
            [FaultKind::Status(502)]
        );
        assert_eq!(
            faults.hit("GET", "/repos/a/b/actions/runs"),
            [FaultKind::Status(502)]
        );
        assert!(faults.hit("GET", "/repos/a/b/actions/runs").is_empty());
    }

    #[test]
    fn an_open_ended_fault_lasts_until_cleared() {
        let mut faults = Faults::default();
        faults.add(Fault::on("", FaultKind::Drop, None));
        for _ in 0..5 {
            assert_eq!(faults.hit("GET", "/x"), [FaultKind::Drop]);
        }
        faults.clear();
        assert!(faults.hit("GET", "/x").is_empty());
    }
}
