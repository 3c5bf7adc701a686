//! What the service has published, and the answers it gave: records kept
//! in one JSON file (`<state dir>/images.json`, replaced atomically on each
//! change) so a restart keeps TTLs and can answer a redelivered request.
//!
//! The decisions (TTL renewal, what has expired, which answers to forget)
//! are plain functions of the records and a time, tested without I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::image::Digest;

/// How long the answer to a request is kept for redeliveries and polling.
pub const ANSWER_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// One published image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub digest: Digest,
    /// The source of the request that published it.
    pub source: String,
    /// Tag links that point at it.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The root filesystem, as clients see it.
    pub path: PathBuf,
    /// The most recent tag link, as clients see it.
    #[serde(default)]
    pub tag_path: Option<PathBuf>,
    pub bytes_downloaded: u64,
    pub bytes_written: u64,
    pub files_written: u64,
    pub created_unix_ms: i64,
    pub last_requested_unix_ms: i64,
    /// When the sweep removes it, unless it is requested again.
    pub expires_unix_ms: i64,
}

impl ImageRecord {
    /// A request at `now_ms` keeps the image at least `ttl_ms` longer; a
    /// shorter TTL never shortens what an earlier request asked for.
    pub fn renew(&mut self, now_ms: i64, ttl_ms: i64, tag: Option<(&str, &Path)>) {
        self.last_requested_unix_ms = now_ms;
        self.expires_unix_ms = self.expires_unix_ms.max(now_ms.saturating_add(ttl_ms));
        if let Some((tag, tag_path)) = tag {
            if !self.tags.iter().any(|t| t == tag) {
                self.tags.push(tag.to_owned());
            }
            self.tag_path = Some(tag_path.to_owned());
        }
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_unix_ms <= now_ms
    }
}

/// The outcome of one request id, kept for its redeliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub request_id: String,
    pub source: String,
    /// `published`, `already_present` or `failed`.
    pub status: String,
    #[serde(default)]
    pub digest: Option<Digest>,
    #[serde(default)]
    pub error: Option<String>,
    pub finished_unix_ms: i64,
}

/// Everything the file holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Records {
    #[serde(default)]
    pub images: BTreeMap<Digest, ImageRecord>,
    #[serde(default)]
    pub answers: BTreeMap<String, Answer>,
}

impl Records {
    /// Digests whose TTL has run out at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> Vec<Digest> {
        self.images
            .values()
            .filter(|record| record.is_expired(now_ms))
            .map(|record| record.digest.clone())
            .collect()
    }

    /// Forgets answers older than [`ANSWER_RETENTION_MS`].
    pub fn prune_answers(&mut self, now_ms: i64) {
        self.answers
            .retain(|_, answer| now_ms - answer.finished_unix_ms < ANSWER_RETENTION_MS);
    }
}

/// Why the records could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a records file: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The records, in memory and in their file.
pub struct Store {
    file: PathBuf,
    records: Mutex<Records>,
}

impl Store {
    /// Opens the records under `state_dir` (created if missing); no file
    /// yet means no records.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Io {
            what: "creating",
            path: state_dir.to_path_buf(),
            source,
        })?;
        let file = state_dir.join("images.json");
        let records = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                path: file.clone(),
                source,
            })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Records::default(),
            Err(source) => {
                return Err(StoreError::Io {
                    what: "reading",
                    path: file,
                    source,
                });
            }
        };
        Ok(Self {
            file,
            records: Mutex::new(records),
        })
    }

    /// A copy of the records.
    pub fn snapshot(&self) -> Records {
        self.records.lock().expect("records lock poisoned").clone()
    }

    pub fn image(&self, digest: &Digest) -> Option<ImageRecord> {
        self.records
            .lock()
            .expect("records lock poisoned")
            .images
            .get(digest)
            .cloned()
    }

    pub fn answer(&self, request_id: &str) -> Option<Answer> {
        self.records
            .lock()
            .expect("records lock poisoned")
            .answers
            .get(request_id)
            .cloned()
    }

    /// Applies `change` and saves the result; the change stays in memory
    /// even when saving fails (the error says the file is behind).
    pub fn update<T>(&self, change: impl FnOnce(&mut Records) -> T) -> Result<T, StoreError> {
        let mut records = self.records.lock().expect("records lock poisoned");
        let value = change(&mut records);
        self.save(&records)?;
        Ok(value)
    }

    fn save(&self, records: &Records) -> Result<(), StoreError> {
        let io = |what, source| StoreError::Io {
            what,
            path: self.file.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(records).expect("records serialise");
        let temp = self.file.with_extension("json.tmp");
        std::fs::write(&temp, bytes).map_err(|source| io("writing", source))?;
        std::fs::rename(&temp, &self.file).map_err(|source| io("replacing", source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires: i64) -> ImageRecord {
        ImageRecord {
            digest: Digest::of(expires.to_string().as_bytes()),
            source: "oci:/x".into(),
            tags: vec![],
            path: "/cvmfs/r/.images/x".into(),
            tag_path: None,
            bytes_downloaded: 1,
            bytes_written: 2,
            files_written: 3,
            created_unix_ms: 0,
            last_requested_unix_ms: 0,
            expires_unix_ms: expires,
        }
    }

    #[test]
    fn a_request_extends_the_ttl_but_never_shortens_it() {
        let mut image = record(1_000);
        image.renew(500, 2_000, None);
        assert_eq!(image.expires_unix_ms, 2_500);
        image.renew(600, 10, None);
        assert_eq!(
            image.expires_unix_ms, 2_500,
            "a short TTL keeps the long one"
        );
        assert_eq!(image.last_requested_unix_ms, 600);
    }

    #[test]
    fn renewing_with_a_tag_remembers_it_once() {
        let mut image = record(0);
        image.renew(1, 1, Some(("r/a:1", Path::new("/t/r/a:1"))));
        image.renew(2, 1, Some(("r/a:1", Path::new("/t/r/a:1"))));
        assert_eq!(image.tags, vec!["r/a:1".to_string()]);
        assert_eq!(image.tag_path.as_deref(), Some(Path::new("/t/r/a:1")));
    }

    #[test]
    fn expiry_is_inclusive_of_the_deadline() {
        let mut records = Records::default();
        for expires in [10, 20, 30] {
            let image = record(expires);
            records.images.insert(image.digest.clone(), image);
        }
        let mut expired = records.expired(20);
        expired.sort();
        let mut want = vec![record(10).digest, record(20).digest];
        want.sort();
        assert_eq!(expired, want);
    }

    #[test]
    fn old_answers_are_forgotten() {
        let mut records = Records::default();
        for (id, finished) in [("old", 0), ("new", ANSWER_RETENTION_MS)] {
            records.answers.insert(
                id.into(),
                Answer {
                    request_id: id.into(),
                    source: "s".into(),
                    status: "published".into(),
                    digest: None,
                    error: None,
                    finished_unix_ms: finished,
                },
            );
        }
        records.prune_answers(ANSWER_RETENTION_MS + 1);
        assert_eq!(records.answers.keys().collect::<Vec<_>>(), vec!["new"]);
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let image = record(42);
        store
            .update(|records| records.images.insert(image.digest.clone(), image.clone()))
            .unwrap();
        let reopened = Store::open(dir.path()).unwrap();
        assert_eq!(reopened.image(&image.digest), Some(image));
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("images.json"), "{not json").unwrap();
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
