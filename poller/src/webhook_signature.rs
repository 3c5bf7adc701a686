//! `X-Hub-Signature-256` verification: HMAC-SHA256 of the raw body under
//! any of the configured secrets (several, so a secret can be rotated),
//! compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Why a delivery's signature is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 matches none of the configured secrets")]
    Mismatch,
}

impl SignatureError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

/// The webhook secrets in force; any of them verifies a delivery.
#[derive(Clone)]
pub struct WebhookSecrets(Vec<SecretString>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecrets({} secrets)", self.0.len())
    }
}

impl WebhookSecrets {
    /// The non-empty lines of `text` (a secrets file), each one secret.
    pub fn from_lines(text: &str) -> Self {
        Self(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(|line| SecretString::from(line.to_string()))
                .collect(),
        )
    }

    /// How many secrets there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none (every delivery would be refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks `header` (the `X-Hub-Signature-256` value) against `body`.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let digest = header
            .trim()
            .strip_prefix("sha256=")
            .filter(|hex| hex.len() == 64)
            .and_then(|hex| hex::decode(hex).ok())
            .ok_or(SignatureError::Malformed)?;
        let matched = self.0.iter().any(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                .expect("HMAC takes any key length");
            mac.update(body);
            mac.verify_slice(&digest).is_ok()
        });
        matched.then_some(()).ok_or(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_test_vector_verifies() {
        let secrets = WebhookSecrets::from_lines("It's a Secret to Everybody\n");
        assert_eq!(secrets.verify(Some(VECTOR), b"Hello, World!"), Ok(()));
    }

    #[test]
    fn any_secret_of_a_rotation_verifies() {
        let secrets = WebhookSecrets::from_lines("new-secret\n\nIt's a Secret to Everybody\n");
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets.verify(Some(VECTOR), b"Hello, World!"), Ok(()));
    }

    #[test]
    fn a_changed_body_a_wrong_secret_or_a_bad_header_is_refused() {
        let secrets = WebhookSecrets::from_lines("It's a Secret to Everybody");
        assert_eq!(
            secrets.verify(Some(VECTOR), b"Hello, World?"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            WebhookSecrets::from_lines("other").verify(Some(VECTOR), b"Hello, World!"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(secrets.verify(None, b""), Err(SignatureError::Missing));
        for bad in ["sha1=abc", "sha256=zz", "sha256=", &VECTOR[..40]] {
            assert_eq!(
                secrets.verify(Some(bad), b"Hello, World!"),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secrets = WebhookSecrets::from_lines("hunter2");
        assert_eq!(format!("{secrets:?}"), "WebhookSecrets(1 secrets)");
    }
}
