//! One layer tar entry as the planner sees it: a normalised path, what kind
//! of file it is, and its metadata. Reading these from a `tar::Entry` is
//! the only tar-specific part; everything after works on plain values.

use std::io::Read;

/// Ownership, permissions and time of a file, as the tar header gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
}

impl Meta {
    /// Directories a layer implies without an entry of their own (`a/b`
    /// without `a/`), as `umoci` and `tar` create them.
    pub const IMPLICIT_DIR: Meta = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
}

/// What an entry makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File {
        size: u64,
    },
    Symlink {
        target: String,
    },
    /// A hard link to `target`, a normalised path in the tree so far.
    HardLink {
        target: String,
    },
    Fifo,
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
}

/// Extended attributes (PAX `SCHILY.xattr.*`), e.g. `security.capability`.
pub type Xattrs = Vec<(String, Vec<u8>)>;

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalised: relative, `/`-separated, no `.`, `..` or empty parts;
    /// the root directory is `""`.
    pub path: String,
    pub kind: Kind,
    pub meta: Meta,
    pub xattrs: Xattrs,
}

/// Why an entry's path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeName {
    pub path: String,
    pub why: &'static str,
}

/// `./a//b/` -> `a/b`; refuses absolute paths and `..` parts, which could
/// only mean writing outside the root.
pub fn normalize(name: &str) -> Result<String, UnsafeName> {
    let unsafe_name = |why| UnsafeName {
        path: name.to_owned(),
        why,
    };
    if name.starts_with('/') {
        return Err(unsafe_name("absolute path"));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_name("`..` component")),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// What reading a tar entry's header can produce.
pub enum Parsed {
    Entry(Entry),
    /// A type the unpacker does not materialise (with the type's name).
    Skipped(String),
}

/// The planner's view of `entry`.
pub fn from_tar<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Parsed, UnsafeName> {
    let mut xattrs = Xattrs::new();
    if let Ok(Some(extensions)) = entry.pax_extensions() {
        for extension in extensions.flatten() {
            if let Ok(key) = extension.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                xattrs.push((name.to_owned(), extension.value_bytes().to_vec()));
            }
        }
    }
    let header = entry.header();
    let raw = entry.path_bytes();
    let name = std::str::from_utf8(&raw).map_err(|_| UnsafeName {
        path: String::from_utf8_lossy(&raw).into_owned(),
        why: "not UTF-8",
    })?;
    let path = normalize(name)?;
    let link = || -> Result<String, UnsafeName> {
        let bytes = entry.link_name_bytes().unwrap_or_default();
        std::str::from_utf8(&bytes)
            .map(str::to_owned)
            .map_err(|_| UnsafeName {
                path: name.to_owned(),
                why: "link target not UTF-8",
            })
    };
    let device = || {
        (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        )
    };
    use tar::EntryType as T;
    let kind = match header.entry_type() {
        T::Directory => Kind::Dir,
        T::Regular | T::Continuous => Kind::File { size: entry.size() },
        T::Symlink => Kind::Symlink { target: link()? },
        T::Link => Kind::HardLink {
            target: normalize(&link()?)?,
        },
        T::Fifo => Kind::Fifo,
        T::Char => {
            let (major, minor) = device();
            Kind::CharDevice { major, minor }
        }
        T::Block => {
            let (major, minor) = device();
            Kind::BlockDevice { major, minor }
        }
        other => return Ok(Parsed::Skipped(format!("{other:?}"))),
    };
    let meta = Meta {
        mode: header.mode().unwrap_or(0o644) & 0o7777,
        uid: header.uid().unwrap_or(0),
        gid: header.gid().unwrap_or(0),
        mtime: header.mtime().unwrap_or(0) as i64,
    };
    Ok(Parsed::Entry(Entry {
        path,
        kind,
        meta,
        xattrs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise_and_escapes_are_refused() {
        assert_eq!(normalize("./a//b/").unwrap(), "a/b");
        assert_eq!(normalize("./").unwrap(), "");
        assert_eq!(normalize("a/./b").unwrap(), "a/b");
        assert_eq!(normalize("/etc/passwd").unwrap_err().why, "absolute path");
        assert_eq!(normalize("a/../../b").unwrap_err().why, "`..` component");
    }
}
