//! [`AuthStatus`]: whether each identity's credentials work, as the last
//! answer showed. A 401, or an installation token that cannot be minted,
//! marks the identity failing; any accepted request clears it. Services
//! put [`AuthStatus::check`] in their `/healthz`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The credential health of every identity of one endpoint.
#[derive(Debug, Default)]
pub struct AuthStatus {
    /// Identity (`token`, `installation 7`) -> why its last request was
    /// refused; absent when it works (or was never used).
    failing: Mutex<BTreeMap<String, String>>,
}

impl AuthStatus {
    /// `identity`'s credentials were refused, for `why`.
    pub fn failed(&self, identity: &str, why: impl Into<String>) {
        let why = why.into();
        let mut failing = self.failing.lock().expect("auth status lock");
        if failing.get(identity) != Some(&why) {
            tracing::warn!(identity, why = %why, "GitHub refused the credentials");
        }
        failing.insert(identity.to_owned(), why);
    }

    /// `identity`'s credentials were accepted.
    pub fn succeeded(&self, identity: &str) {
        let mut failing = self.failing.lock().expect("auth status lock");
        if failing.remove(identity).is_some() {
            tracing::info!(identity, "GitHub accepts the credentials again");
        }
    }

    /// Every failing identity and why.
    pub fn failures(&self) -> Vec<(String, String)> {
        self.failing
            .lock()
            .expect("auth status lock")
            .iter()
            .map(|(identity, why)| (identity.clone(), why.clone()))
            .collect()
    }

    /// `Ok` while every identity used works; else what a health check
    /// shows.
    pub fn check(&self) -> Result<(), String> {
        let failures = self.failures();
        if failures.is_empty() {
            return Ok(());
        }
        Err(failures
            .iter()
            .map(|(identity, why)| format!("{identity}: {why}"))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_fails_the_check_until_the_identity_is_accepted_again() {
        let status = AuthStatus::default();
        assert_eq!(status.check(), Ok(()));
        status.failed("installation 7", "bad credentials");
        status.succeeded("token");
        assert_eq!(
            status.check(),
            Err("installation 7: bad credentials".to_string())
        );
        status.succeeded("installation 7");
        assert_eq!(status.check(), Ok(()));
    }
}
