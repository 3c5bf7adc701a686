//! A directory tree as comparable facts: per path its type, mode, owner,
//! size, content hash, link target, device number, and which paths share
//! an inode.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// What is known about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub sha256: Option<String>,
    pub target: Option<String>,
    /// Mtime of non-directories (directories' times differ by tool).
    pub mtime: Option<i64>,
    /// The smallest path sharing this inode (hard-link group).
    pub group: String,
    /// Device number of device nodes.
    pub rdev: u64,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0);
    let mut out: Vec<(String, Vec<u8>)> = names[..n]
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let name = String::from_utf8_lossy(name).into_owned();
            let mut value = vec![0u8; 4096];
            let len = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]).unwrap();
            value.truncate(len);
            (name, value)
        })
        .collect();
    out.sort();
    out
}

/// Every path under `root` (relative, root itself as ".").
pub fn snapshot(root: &Path) -> BTreeMap<String, Facts> {
    let mut out = BTreeMap::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    let mut stack = vec![root.to_owned()];
    let mut all = Vec::new();
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
        all.push((path, meta));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, meta) in all {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let rel = if rel.is_empty() { ".".to_owned() } else { rel };
        let kind = match meta.mode() & 0o170000 {
            0o040000 => "dir",
            0o100000 => "file",
            0o120000 => "symlink",
            0o010000 => "fifo",
            0o020000 => "chardev",
            0o060000 => "blockdev",
            _ => "other",
        };
        let group = if kind == "dir" {
            rel.clone()
        } else {
            inodes
                .entry((meta.dev(), meta.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        };
        out.insert(
            rel,
            Facts {
                kind,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                size: if kind == "file" { meta.size() } else { 0 },
                sha256: (kind == "file")
                    .then(|| hex::encode(Sha256::digest(std::fs::read(&path).unwrap()))),
                target: (kind == "symlink").then(|| {
                    std::fs::read_link(&path)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                }),
                mtime: (kind != "dir").then(|| meta.mtime()),
                group,
                rdev: meta.rdev(),
                xattrs: xattrs(&path),
            },
        );
    }
    out
}
