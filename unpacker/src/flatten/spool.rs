//! The spool: where the first pass writes every regular file's content as
//! its layer streams past, all layers at once, each file under a flat name
//! (`<layer>-<entry>`) with its owner, mode and times already set.
//!
//! Once the plan is known, surviving files are renamed into the tree (no
//! byte is copied twice) and the spool, holding only what upper layers
//! replaced or whited out, is deleted. It sits beside the destination, on
//! the same file system, so the renames are cheap.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};

use super::Counters;
use super::entry::Entry;
use super::write_dir::{Owner, fill_file, io_error};
use crate::unpack::UnpackError;

/// Copy buffer per layer: large reads keep the inflater's calls few.
const COPY_BUFFER: usize = 1024 * 1024;

/// A spool directory.
pub struct Spool<'a> {
    dir: &'a Path,
    /// Files are made and moved relative to this, without path walks.
    fd: OwnedFd,
    owner: Owner,
    counters: &'a Counters,
}

impl<'a> Spool<'a> {
    /// Over `dir`, an existing empty directory.
    pub fn new(dir: &'a Path, counters: &'a Counters) -> Result<Self, UnpackError> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| io_error(dir, errno.into()))?;
        Ok(Self {
            dir,
            fd,
            owner: Owner::current(),
            counters,
        })
    }

    /// The name entry `index` of `layer` is spooled under, in [`Self::fd`].
    pub fn name(layer: usize, index: usize) -> String {
        format!("{layer}-{index}")
    }

    /// The spool directory.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Writes one entry's content.
    pub fn write(
        &self,
        layer: usize,
        index: usize,
        data: &mut impl Read,
        entry: &Entry,
        buffer: &mut Vec<u8>,
    ) -> Result<(), UnpackError> {
        if buffer.is_empty() {
            buffer.resize(COPY_BUFFER, 0);
        }
        let name = Self::name(layer, index);
        let path = self.dir.join(&name);
        let size = rustix::fs::openat(
            &self.fd,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(entry.meta.mode & 0o777),
        )
        .map_err(io::Error::from)
        .and_then(|fd| fill_file(&mut File::from(fd), &path, data, entry, self.owner, buffer))
        .map_err(|err| {
            if crate::verify::Mismatch::find(&err).is_some() {
                super::layer::layer_error(layer, err)
            } else {
                io_error(&path, err)
            }
        })?;
        self.counters
            .bytes_written
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Removes a spool (or any tree), making directories writable first if
/// the plain removal fails (read-only directories when not root).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
        return Ok(());
    }
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    std::fs::remove_dir_all(path)
}
