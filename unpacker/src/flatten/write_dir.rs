//! Second pass into a directory: the planned tree written with each
//! surviving file's bytes copied once, layers read in parallel.
//!
//! Directories are created first (owner-writable), then links, FIFOs and
//! devices, then file contents layer by layer, and last the directories'
//! own metadata, deepest first, so that writing their contents cannot
//! change it. No path here crosses a symlink: the plan resolved them all.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;
use rustix::fs::{FileType, Gid, Mode, Uid};

use super::entry::{Kind, Meta};
use super::layer::layer_error;
use super::plan::{FinalInode, Tree};
use super::{Counters, LayerRefs, parallel_map};
use crate::unpack::UnpackError;

/// Copy buffer per worker: large reads keep the inflater's calls few.
const COPY_BUFFER: usize = 1024 * 1024;

/// Writes `tree` under `root` (an existing, empty directory).
pub fn write(
    layers: &LayerRefs<'_>,
    tree: &Tree,
    root: &Path,
    parallel: usize,
    counters: &Counters,
) -> Result<(), UnpackError> {
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
    write_contents(layers, tree, root, parallel, owner, counters)?;
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
    }
    Ok(())
}

/// Whether ownership from the layers can be kept.
#[derive(Clone, Copy)]
struct Owner {
    root: bool,
}

impl Owner {
    fn current() -> Self {
        Self {
            root: rustix::process::geteuid().is_root(),
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
    counters.file_written(0);
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

fn write_contents(
    layers: &LayerRefs<'_>,
    tree: &Tree,
    root: &Path,
    parallel: usize,
    owner: Owner,
    counters: &Counters,
) -> Result<(), UnpackError> {
    let wanted = tree.data_by_layer(layers.descriptors.len());
    let todo: Vec<usize> = (0..wanted.len())
        .filter(|&l| !wanted[l].is_empty())
        .collect();
    parallel_map(todo.len(), parallel, |i| {
        let layer = todo[i];
        let mut buffer = vec![0; COPY_BUFFER];
        write_layer(
            layers,
            layer,
            &wanted[layer],
            root,
            owner,
            counters,
            &mut buffer,
        )
    })?;
    Ok(())
}

fn write_layer(
    layers: &LayerRefs<'_>,
    layer: usize,
    wanted: &std::collections::HashMap<usize, &FinalInode>,
    root: &Path,
    owner: Owner,
    counters: &Counters,
    buffer: &mut [u8],
) -> Result<(), UnpackError> {
    let mut stream = layers.open(layer, &counters.bytes_reread)?;
    let mut remaining = wanted.len();
    {
        let mut archive = stream.archive();
        let entries = archive.entries().map_err(|err| layer_error(layer, err))?;
        for (index, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|err| layer_error(layer, err))?;
            let Some(file) = wanted.get(&index) else {
                continue;
            };
            let path = root.join(&file.names[0]);
            let size =
                write_file(&path, &mut entry, file.inode.meta, owner, buffer).map_err(|err| {
                    match err.get_ref().map(|e| e.is::<crate::verify::Mismatch>()) {
                        Some(true) => layer_error(layer, err),
                        _ => io_error(&path, err),
                    }
                })?;
            counters.file_written(size);
            link_others(root, file)?;
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
    }
    if remaining != 0 {
        return Err(UnpackError::Invalid {
            what: format!("layer {layer}"),
            detail: "changed between the two passes".into(),
        });
    }
    stream.finish_compressed()
}

fn write_file(
    path: &Path,
    data: &mut impl Read,
    meta: Meta,
    owner: Owner,
    buffer: &mut [u8],
) -> io::Result<u64> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
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
    if owner.root {
        let (uid, gid) = ids(meta);
        rustix::fs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    }
    file.set_permissions(Permissions::from_mode(meta.mode))?;
    let time = FileTime::from_unix_time(meta.mtime, 0);
    filetime::set_file_handle_times(&file, Some(time), Some(time))?;
    Ok(written)
}

pub(crate) fn io_error(path: &Path, source: io::Error) -> UnpackError {
    UnpackError::Io {
        what: path.display().to_string(),
        source,
    }
}
