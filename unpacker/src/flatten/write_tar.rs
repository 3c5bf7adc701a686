//! Second pass into one tar stream (what `cvmfs_server ingest --tar_file -`
//! reads): the planned tree, directories first, then links, FIFOs and
//! devices, then file contents streamed from the layers in order; further
//! names of an inode follow as hard links. Nothing is staged on disk.

use std::io::{self, Write};

use tar::{EntryType, Header};

use super::LayerRefs;
use super::entry::{Kind, Meta, Xattrs};
use super::layer::layer_error;
use super::plan::{FinalInode, Tree};
use crate::unpack::{UnpackError, UnpackOptions};

/// Writes `tree` as a tar to `out`.
pub fn write(
    layers: &LayerRefs<'_>,
    tree: &Tree,
    out: &mut dyn Write,
    options: &UnpackOptions,
    extras: impl FnOnce(&mut tar::Builder<&mut dyn Write>) -> io::Result<()>,
) -> Result<(), UnpackError> {
    let counters = &options.progress;
    let mut builder = tar::Builder::new(out);
    let io = |err: io::Error| UnpackError::Io {
        what: "tar output".into(),
        source: err,
    };
    for dir in tree.dirs.iter().filter(|d| !d.path.is_empty()) {
        append_xattrs(&mut builder, &dir.xattrs).map_err(io)?;
        let mut header = header(EntryType::Directory, dir.meta);
        builder
            .append_data(&mut header, format!("{}/", dir.path), io::empty())
            .map_err(io)?;
    }
    for file in tree
        .files
        .iter()
        .filter(|f| !matches!(f.inode.kind, Kind::File { .. }))
    {
        let meta = file.inode.meta;
        let first = &file.names[0];
        append_xattrs(&mut builder, &file.inode.xattrs).map_err(io)?;
        match &file.inode.kind {
            Kind::Symlink { target } => {
                let mut header = header(EntryType::Symlink, meta);
                builder
                    .append_link(&mut header, first, target)
                    .map_err(io)?;
            }
            Kind::Fifo => {
                let mut header = header(EntryType::Fifo, meta);
                builder
                    .append_data(&mut header, first, io::empty())
                    .map_err(io)?;
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                let kind = if matches!(file.inode.kind, Kind::CharDevice { .. }) {
                    EntryType::Char
                } else {
                    EntryType::Block
                };
                let mut header = header(kind, meta);
                header.set_device_major(*major).map_err(io)?;
                header.set_device_minor(*minor).map_err(io)?;
                builder
                    .append_data(&mut header, first, io::empty())
                    .map_err(io)?;
            }
            Kind::File { .. } | Kind::Dir | Kind::HardLink { .. } => unreachable!("not special"),
        }
        counters.file_written(0);
        append_links(&mut builder, file).map_err(io)?;
    }
    let wanted = tree.data_by_layer(layers.descriptors.len());
    for (layer, wanted) in wanted.iter().enumerate() {
        if wanted.is_empty() {
            continue;
        }
        let mut stream = layers.open(layer, &counters.bytes_reread)?;
        let mut remaining = wanted.len();
        {
            let mut archive = stream.archive();
            let entries = archive.entries().map_err(|err| layer_error(layer, err))?;
            for (index, entry) in entries.enumerate() {
                if options.cancel.is_cancelled() {
                    return Err(UnpackError::Cancelled);
                }
                let entry = entry.map_err(|err| layer_error(layer, err))?;
                let Some(file) = wanted.get(&index) else {
                    continue;
                };
                let size = entry.size();
                append_xattrs(&mut builder, &file.inode.xattrs).map_err(io)?;
                let mut header = header(EntryType::Regular, file.inode.meta);
                header.set_size(size);
                builder
                    .append_data(&mut header, &file.names[0], entry)
                    .map_err(|err| {
                        match err.get_ref().map(|e| e.is::<crate::verify::Mismatch>()) {
                            Some(true) => layer_error(layer, err),
                            _ => io(err),
                        }
                    })?;
                counters.file_written(size);
                append_links(&mut builder, file).map_err(io)?;
                remaining -= 1;
                if remaining == 0 {
                    break;
                }
            }
        }
        stream.finish_compressed()?;
    }
    extras(&mut builder).map_err(io)?;
    builder.finish().map_err(io)?;
    Ok(())
}

fn header(kind: EntryType, meta: Meta) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(meta.mode);
    header.set_uid(meta.uid);
    header.set_gid(meta.gid);
    header.set_mtime(meta.mtime.max(0) as u64);
    header.set_size(0);
    header
}

fn append_links(builder: &mut tar::Builder<&mut dyn Write>, file: &FinalInode) -> io::Result<()> {
    for other in &file.names[1..] {
        let mut header = header(EntryType::Link, file.inode.meta);
        builder.append_link(&mut header, other, &file.names[0])?;
    }
    Ok(())
}

/// A PAX extended header carrying `xattrs` for the entry that follows.
fn append_xattrs(builder: &mut tar::Builder<&mut dyn Write>, xattrs: &Xattrs) -> io::Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let mut records = Vec::new();
    for (name, value) in xattrs {
        let body = [b" SCHILY.xattr.", name.as_bytes(), b"=", value, b"\n"].concat();
        let mut length = body.len() + 1;
        while length != body.len() + length.to_string().len() {
            length = body.len() + length.to_string().len();
        }
        records.extend_from_slice(length.to_string().as_bytes());
        records.extend_from_slice(&body);
    }
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::XHeader);
    header.set_path("PaxHeaders/xattrs")?;
    header.set_mode(0o644);
    header.set_size(records.len() as u64);
    header.set_cksum();
    builder.append(&header, &records[..])
}
