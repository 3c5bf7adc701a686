//! The planned tree into a directory: directories first (owner-writable),
//! then symlinks, FIFOs and devices, then each surviving file renamed in
//! from the spool (see `spool`) with its hard links, and last the
//! directories' own metadata, deepest first, so that filling them cannot
//! change it. No path here crosses a symlink: the plan resolved them all.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;

use filetime::FileTime;
use rustix::fs::{FileType, Gid, Mode, OFlags, Uid, XattrFlags};

use super::Counters;
use super::entry::{Entry, Kind, Meta, Xattrs};
use super::plan::{FinalInode, Tree};
use super::spool::Spool;
use crate::unpack::{UnpackError, UnpackOptions};

/// Writes `tree` under `root` (an existing, empty directory), taking file
/// contents from `spool`, where the first pass put them. With
/// `--apptainer` the tree's file modes differ from the layers', so the
/// spooled files get theirs set again.
pub fn write(
    tree: &Tree,
    root: &Path,
    spool: &Spool<'_>,
    options: &UnpackOptions,
) -> Result<(), UnpackError> {
    let counters = &options.progress;
    let owner = Owner::current();
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o700);
    for dir in tree.dirs.iter().filter(|d| !d.path.is_empty()) {
        let path = root.join(&dir.path);
        builder.create(&path).map_err(|err| io_error(&path, err))?;
    }
    for file in tree
        .files
        .iter()
        .filter(|f| !matches!(f.inode.kind, Kind::File { .. }))
    {
        write_special(root, file, owner, counters)?;
    }
    place_contents(tree, root, spool, options)?;
    for dir in tree.dirs.iter().rev() {
        let path = root.join(&dir.path);
        let meta = if dir.implicit {
            Meta {
                mtime: i64::MIN,
                ..dir.meta
            }
        } else {
            dir.meta
        };
        apply_meta(&path, meta, owner, false).map_err(|err| io_error(&path, err))?;
        set_xattrs(&path, &dir.xattrs).map_err(|err| io_error(&path, err))?;
    }
    Ok(())
}

/// Whether ownership from the layers can be kept.
#[derive(Clone, Copy)]
pub(crate) struct Owner {
    root: bool,
    /// The process umask: modes it would change need an explicit chmod.
    umask: u32,
}

impl Owner {
    pub(crate) fn current() -> Self {
        let umask = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("Umask:"))?;
                u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
            })
            .unwrap_or(0o777);
        Self {
            root: rustix::process::geteuid().is_root(),
            umask,
        }
    }
}

/// Owner, mode and times of `path`; `mtime == i64::MIN` leaves the time.
fn apply_meta(path: &Path, meta: Meta, owner: Owner, symlink: bool) -> io::Result<()> {
    if owner.root {
        let (uid, gid) = ids(meta);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    if !symlink {
        fs::set_permissions(path, Permissions::from_mode(meta.mode))?;
    }
    if meta.mtime != i64::MIN {
        let time = FileTime::from_unix_time(meta.mtime, 0);
        filetime::set_symlink_file_times(path, time, time)?;
    }
    Ok(())
}

fn ids(meta: Meta) -> (u32, u32) {
    (
        u32::try_from(meta.uid).unwrap_or(u32::MAX - 1),
        u32::try_from(meta.gid).unwrap_or(u32::MAX - 1),
    )
}

fn write_special(
    root: &Path,
    file: &FinalInode,
    owner: Owner,
    counters: &Counters,
) -> Result<(), UnpackError> {
    let first = root.join(&file.names[0]);
    let io = |err| io_error(&first, err);
    let meta = file.inode.meta;
    let node = |kind: FileType, dev| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &first,
            kind,
            Mode::from_raw_mode(meta.mode & 0o777),
            dev,
        )
    };
    match &file.inode.kind {
        Kind::Symlink { target } => {
            std::os::unix::fs::symlink(target, &first).map_err(io)?;
            apply_meta(&first, meta, owner, true).map_err(io)?;
        }
        Kind::Fifo => {
            node(FileType::Fifo, 0).map_err(|e| io(e.into()))?;
            apply_meta(&first, meta, owner, false).map_err(io)?;
        }
        Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
            let kind = if matches!(file.inode.kind, Kind::CharDevice { .. }) {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            match node(kind, rustix::fs::makedev(*major, *minor)) {
                Ok(()) => apply_meta(&first, meta, owner, false).map_err(io)?,
                Err(rustix::io::Errno::PERM) => {
                    tracing::warn!(path = %file.names[0], "device node skipped: not permitted");
                    return Ok(());
                }
                Err(err) => return Err(io(err.into())),
            }
        }
        Kind::File { .. } | Kind::Dir | Kind::HardLink { .. } => unreachable!("not special"),
    }
    set_xattrs(&first, &file.inode.xattrs).map_err(io)?;
    counters.files_written.fetch_add(1, Ordering::Relaxed);
    link_others(root, file)
}

fn link_others(root: &Path, file: &FinalInode) -> Result<(), UnpackError> {
    let first = root.join(&file.names[0]);
    for other in &file.names[1..] {
        let path = root.join(other);
        fs::hard_link(&first, &path).map_err(|err| io_error(&path, err))?;
    }
    Ok(())
}

/// Renames each surviving file from the spool to its first name and
/// links the others.
fn place_contents(
    tree: &Tree,
    root: &Path,
    spool: &Spool<'_>,
    options: &UnpackOptions,
) -> Result<(), UnpackError> {
    // By directory, so each rename is relative to an open directory.
    let mut files: Vec<&FinalInode> = tree
        .files
        .iter()
        .filter(|f| matches!(f.inode.kind, Kind::File { .. }))
        .collect();
    files.sort_by(|a, b| a.names[0].cmp(&b.names[0]));
    let mut parent_fd: Option<(&str, OwnedFd)> = None;
    for file in files {
        if options.cancel.is_cancelled() {
            return Err(UnpackError::Cancelled);
        }
        let (parent, name) = file.names[0]
            .rsplit_once('/')
            .unwrap_or(("", &file.names[0]));
        let to = root.join(&file.names[0]);
        if parent_fd.as_ref().is_none_or(|(open, _)| *open != parent) {
            let dir = root.join(parent);
            let fd = rustix::fs::open(
                &dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| io_error(&dir, errno.into()))?;
            parent_fd = Some((parent, fd));
        }
        let (_, fd) = parent_fd.as_ref().expect("just opened");
        let from = Spool::name(file.inode.layer, file.inode.entry);
        rustix::fs::renameat(spool.fd(), from.as_str(), fd, name)
            .map_err(|errno| io_error(&to, errno.into()))?;
        if options.apptainer {
            fs::set_permissions(&to, Permissions::from_mode(file.inode.meta.mode))
                .map_err(|err| io_error(&to, err))?;
        }
        options
            .progress
            .files_written
            .fetch_add(1, Ordering::Relaxed);
        link_others(root, file)?;
    }
    Ok(())
}

/// Writes `data` into the new `file` (created with `entry`'s permission
/// bits) and gives it `entry`'s owner, special mode bits, xattrs and times.
pub(crate) fn fill_file(
    file: &mut File,
    path: &Path,
    data: &mut impl Read,
    entry: &Entry,
    owner: Owner,
    buffer: &mut [u8],
) -> io::Result<u64> {
    let meta = entry.meta;
    let mut written = 0;
    loop {
        let n = match data.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        file.write_all(&buffer[..n])?;
        written += n as u64;
    }
    // A new file is the caller's already; as root, root's (the spool is
    // not setgid: `Staging` sets its mode to exactly 0700).
    let (uid, gid) = ids(meta);
    if owner.root && (uid, gid) != (0, 0) {
        rustix::fs::fchown(&*file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    }
    if meta.mode & 0o7000 != 0 || meta.mode & owner.umask & 0o777 != 0 {
        file.set_permissions(Permissions::from_mode(meta.mode))?;
    }
    // After chown, which drops `security.capability`.
    for (name, value) in &entry.xattrs {
        if let Err(errno) = rustix::fs::fsetxattr(&*file, name.as_str(), value, XattrFlags::empty())
        {
            xattr_refused(path, name, errno)?;
        }
    }
    let time = FileTime::from_unix_time(meta.mtime, 0);
    filetime::set_file_handle_times(file, Some(time), Some(time))?;
    Ok(written)
}

/// Sets `xattrs` on `path` (not following a symlink).
fn set_xattrs(path: &Path, xattrs: &Xattrs) -> io::Result<()> {
    for (name, value) in xattrs {
        if let Err(errno) = rustix::fs::lsetxattr(path, name.as_str(), value, XattrFlags::empty()) {
            xattr_refused(path, name, errno)?;
        }
    }
    Ok(())
}

/// An attribute the file system or our privileges do not allow is
/// skipped with a warning (as for device nodes); other errors fail.
fn xattr_refused(path: &Path, name: &str, errno: rustix::io::Errno) -> io::Result<()> {
    use rustix::io::Errno;
    if matches!(errno, Errno::PERM | Errno::NOTSUP | Errno::ACCESS) {
        tracing::warn!(path = %path.display(), name, %errno, "extended attribute skipped");
        return Ok(());
    }
    Err(errno.into())
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io {
        what: path.display().to_string(),
        source,
    }
}
