//! Files of an image on local disk, wherever they sit: a directory (an
//! `oci:` layout) or members of a tar file (`oci-archive:`,
//! `docker-archive:`), read in place.
//!
//! A tar is indexed once (each member's data offset and size, seeking past
//! the data) and members are then read by offset, so an archive is never
//! extracted to a scratch directory and layers can be read concurrently.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::SourceError;

/// Read access to named files of an image.
pub trait Store: Send + Sync {
    /// The file at `name` (a `/`-separated path inside the layout).
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, SourceError>;

    /// Whether `name` exists.
    fn contains(&self, name: &str) -> bool;

    /// The whole of a small file (index, manifest, config).
    fn read_small(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let mut bytes = Vec::new();
        self.open(name)?
            .take(MAX_METADATA)
            .read_to_end(&mut bytes)
            .map_err(|source| SourceError::Io {
                what: name.to_owned(),
                source,
            })?;
        if bytes.len() as u64 >= MAX_METADATA {
            return Err(SourceError::Malformed {
                what: name.to_owned(),
                detail: format!("larger than {MAX_METADATA} bytes: not a manifest or config"),
            });
        }
        Ok(bytes)
    }
}

/// Manifests, indexes and configs are small; anything larger is refused
/// rather than read into memory.
pub const MAX_METADATA: u64 = 16 * 1024 * 1024;

/// An image layout directory.
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, name: &str) -> Result<PathBuf, SourceError> {
        if name.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(SourceError::Malformed {
                what: name.to_owned(),
                detail: "not a plain relative path".into(),
            });
        }
        Ok(self.root.join(name))
    }
}

impl Store for DirStore {
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, SourceError> {
        let path = self.path(name)?;
        let file = File::open(&path).map_err(|source| io_error(&path, source))?;
        Ok(Box::new(file))
    }

    fn contains(&self, name: &str) -> bool {
        self.path(name).is_ok_and(|path| path.is_file())
    }
}

/// Members of an uncompressed tar, read by offset.
pub struct TarStore {
    file: PathBuf,
    /// Member name (without `./`) -> (data offset, size).
    members: HashMap<String, (u64, u64)>,
}

impl TarStore {
    /// Indexes the regular files of the tar at `file`.
    pub fn index(file: &Path) -> Result<Self, SourceError> {
        let io = |source| io_error(file, source);
        let handle = File::open(file).map_err(io)?;
        let mut archive = tar::Archive::new(handle);
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(io)? {
            let entry = entry.map_err(io)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry.path().map_err(io)?.to_string_lossy().into_owned();
            let name = name.trim_start_matches("./").to_owned();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        Ok(Self {
            file: file.to_owned(),
            members,
        })
    }

    /// The size of member `name`.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.members.get(name).map(|&(_, size)| size)
    }
}

impl Store for TarStore {
    fn open(&self, name: &str) -> Result<Box<dyn Read + Send>, SourceError> {
        let &(offset, size) = self
            .members
            .get(name)
            .ok_or_else(|| SourceError::NotFound {
                what: format!("{name} in {}", self.file.display()),
            })?;
        let io = |source| io_error(&self.file, source);
        let mut file = File::open(&self.file).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        Ok(Box::new(file.take(size)))
    }

    fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> SourceError {
    if source.kind() == io::ErrorKind::NotFound {
        SourceError::NotFound {
            what: path.display().to_string(),
        }
    } else {
        SourceError::Io {
            what: path.display().to_string(),
            source,
        }
    }
}
