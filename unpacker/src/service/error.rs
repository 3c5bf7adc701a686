//! Why a request failed, in the kinds its callers branch on (HTTP status,
//! metric label, whether a NATS delivery is worth retrying). Cloneable, so
//! requests that share one unpack share its failure.

use crate::publish::{BadTag, PublishError};
use crate::source::{BadSourceRef, SourceError};
use crate::store::StoreError;
use crate::unpack::UnpackError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The request itself is wrong (source syntax, tag, platform).
    #[error("{0}")]
    BadRequest(String),
    /// The image (or a platform of it) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The source refused us.
    #[error("{0}")]
    Denied(String),
    /// This service does not read that source (a local path outside the
    /// allowed directories).
    #[error("{0}")]
    Forbidden(String),
    /// The image is broken or unsafe: digest mismatch, path escape, ...
    #[error("{0}")]
    BadImage(String),
    /// The source could not be reached; trying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Writing or publishing failed on our side.
    #[error("{0}")]
    Publish(String),
    #[error("the unpacker is shutting down")]
    ShuttingDown,
}

impl RequestError {
    /// A short stable name, for metric labels and JSON error bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::Denied(_) => "denied",
            Self::Forbidden(_) => "forbidden",
            Self::BadImage(_) => "bad_image",
            Self::Unavailable(_) => "unavailable",
            Self::Publish(_) => "publish",
            Self::ShuttingDown => "shutting_down",
        }
    }

    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::ShuttingDown)
    }
}

impl From<BadSourceRef> for RequestError {
    fn from(err: BadSourceRef) -> Self {
        Self::BadRequest(err.to_string())
    }
}

impl From<BadTag> for RequestError {
    fn from(err: BadTag) -> Self {
        Self::BadRequest(err.to_string())
    }
}

impl From<SourceError> for RequestError {
    fn from(err: SourceError) -> Self {
        let text = err.to_string();
        match err {
            SourceError::NotFound { .. } => Self::NotFound(text),
            SourceError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Self::NotFound(text)
            }
            SourceError::Unauthorized { .. } => Self::Denied(text),
            SourceError::Malformed { .. } => Self::BadImage(text),
            SourceError::Io { .. } | SourceError::Transport { .. } => Self::Unavailable(text),
        }
    }
}

impl From<UnpackError> for RequestError {
    fn from(err: UnpackError) -> Self {
        let text = err.to_string();
        match err {
            UnpackError::Source(source) => source.into(),
            UnpackError::NoMatchingPlatform { .. } => Self::NotFound(text),
            UnpackError::DigestMismatch { .. }
            | UnpackError::UnsafePath { .. }
            | UnpackError::Invalid { .. } => Self::BadImage(text),
            UnpackError::Io { .. } => Self::Publish(text),
            UnpackError::Cancelled => Self::ShuttingDown,
        }
    }
}

impl From<PublishError> for RequestError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::Unpack(unpack) => unpack.into(),
            PublishError::Cancelled => Self::ShuttingDown,
            other => Self::Publish(other.to_string()),
        }
    }
}

impl From<StoreError> for RequestError {
    fn from(err: StoreError) -> Self {
        Self::Publish(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_local_layout_is_not_found() {
        let err: RequestError = SourceError::Io {
            what: "oci:/nope".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
        .into();
        assert_eq!(err.kind(), "not_found");
    }

    #[test]
    fn digest_mismatches_inside_a_publish_are_bad_images() {
        let digest = crate::image::Digest::of(b"");
        let err: RequestError = PublishError::Unpack(UnpackError::DigestMismatch {
            what: "layer 0".into(),
            expected: digest.clone(),
            actual: digest,
        })
        .into();
        assert_eq!(err.kind(), "bad_image");
        assert!(!err.is_transient());
    }

    #[test]
    fn registry_outages_are_worth_retrying() {
        let err: RequestError = SourceError::Transport {
            what: "r".into(),
            detail: "connection refused".into(),
        }
        .into();
        assert!(err.is_transient());
    }
}
