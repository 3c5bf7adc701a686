//! The flattened tree, computed from the layers' headers alone: which entry
//! of which layer each final path comes from, and which paths share an
//! inode. Pure logic, no I/O: exact OCI layer semantics live here.
//!
//! Layers are applied bottom-up in tar order, as `umoci` and the OCI spec
//! do, but only in memory; the writers then copy each surviving file's
//! bytes once, however often upper layers replaced it.
//!
//! - `.wh.NAME` removes NAME (with its subtree) as lower layers left it;
//!   entries of the same layer survive.
//! - `.wh..wh..opq` removes every lower-layer child of its directory,
//!   wherever it appears in the layer.
//! - A non-directory replaces whatever was at its path (a directory with
//!   its subtree); a directory over a directory merges.
//! - A hard link shares the inode its target has at that point, so it
//!   keeps the old content when an upper layer replaces the target.
//! - Paths resolve through symlinks already in the tree, as the root's own
//!   (absolute targets from the root); climbing above the root is an error.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::entry::{Entry, Kind, Meta, Xattrs};

/// An inode of the final tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Not `Dir` or `HardLink`.
    pub kind: Kind,
    pub meta: Meta,
    pub xattrs: Xattrs,
    /// The layer and entry number (in tar order) that created it.
    pub layer: usize,
    pub entry: usize,
}

#[derive(Debug, Clone)]
enum Node {
    Dir {
        meta: Meta,
        xattrs: Xattrs,
        layer: usize,
        /// Created for an entry's parent without an entry of its own.
        implicit: bool,
    },
    Inode {
        id: usize,
        layer: usize,
    },
}

impl Node {
    fn layer(&self) -> usize {
        match self {
            Self::Dir { layer, .. } | Self::Inode { layer, .. } => *layer,
        }
    }
}

/// An entry the planner refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path:?}: {why}")]
pub struct PlanError {
    pub path: String,
    pub why: String,
    /// Whether the entry would write outside the root (else: malformed).
    pub escapes: bool,
}

/// Symlinks followed in one lookup before it is called a loop (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// The tree so far. Root is the path `""`.
#[derive(Debug, Clone)]
pub struct Plan {
    nodes: BTreeMap<String, Node>,
    inodes: Vec<Inode>,
}

impl Default for Plan {
    fn default() -> Self {
        let root = Node::Dir {
            meta: Meta::IMPLICIT_DIR,
            xattrs: Xattrs::new(),
            layer: 0,
            implicit: true,
        };
        Self {
            nodes: BTreeMap::from([(String::new(), root)]),
            inodes: Vec::new(),
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl Plan {
    /// Applies entry number `index` of layer `layer`.
    pub fn apply(&mut self, layer: usize, index: usize, entry: &Entry) -> Result<(), PlanError> {
        let (parent, name) = split(&entry.path);
        if entry.path.is_empty() {
            return match entry.kind {
                Kind::Dir => {
                    self.nodes.insert(String::new(), dir(entry, layer));
                    Ok(())
                }
                _ => Err(error(&entry.path, "the root is not a directory", false)),
            };
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let Some(parent) = self.resolve_dir(parent, layer, false, &entry.path)? else {
                return Ok(());
            };
            if hidden == ".wh..opq" {
                self.hide_lower(&parent, layer, false);
            } else if !hidden.starts_with(".wh.") {
                self.hide_lower(&join(&parent, hidden), layer, true);
            }
            return Ok(());
        }
        let parent = self
            .resolve_dir(parent, layer, true, &entry.path)?
            .expect("created when missing");
        let path = join(&parent, name);
        let node = match &entry.kind {
            Kind::Dir => {
                if !matches!(self.nodes.get(&path), Some(Node::Dir { .. })) {
                    self.remove_subtree(&path);
                }
                self.nodes.insert(path, dir(entry, layer));
                return Ok(());
            }
            Kind::HardLink { target } => {
                let (target_parent, target_name) = split(target);
                let target_parent = self
                    .resolve_dir(target_parent, layer, false, &entry.path)?
                    .ok_or_else(|| error(&entry.path, "hard link to a missing file", false))?;
                let target = join(&target_parent, target_name);
                if target == path {
                    return Ok(());
                }
                match self.nodes.get(&target) {
                    Some(Node::Inode { id, .. }) => Node::Inode { id: *id, layer },
                    Some(Node::Dir { .. }) => {
                        return Err(error(&entry.path, "hard link to a directory", false));
                    }
                    None => {
                        return Err(error(
                            &entry.path,
                            &format!("hard link to missing {target:?}"),
                            false,
                        ));
                    }
                }
            }
            kind => {
                self.inodes.push(Inode {
                    kind: kind.clone(),
                    meta: entry.meta,
                    xattrs: entry.xattrs.clone(),
                    layer,
                    entry: index,
                });
                Node::Inode {
                    id: self.inodes.len() - 1,
                    layer,
                }
            }
        };
        self.remove_subtree(&path);
        self.nodes.insert(path, node);
        Ok(())
    }

    /// `path`'s directory after following symlinks in the tree; missing
    /// directories are created (implicitly, in `layer`) when `create`,
    /// else the answer is `None`.
    fn resolve_dir(
        &mut self,
        path: &str,
        layer: usize,
        create: bool,
        entry: &str,
    ) -> Result<Option<String>, PlanError> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
        let mut current = String::new();
        let mut followed = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if current.is_empty() {
                        return Err(error(entry, "resolves above the root", true));
                    }
                    current = split(&current).0.to_owned();
                    continue;
                }
                _ => {}
            }
            let next = join(&current, &part);
            match self.nodes.get(&next) {
                Some(Node::Dir { .. }) => current = next,
                Some(Node::Inode { id, .. }) => match &self.inodes[*id].kind {
                    Kind::Symlink { target } => {
                        followed += 1;
                        if followed > MAX_SYMLINKS {
                            return Err(error(entry, "too many levels of symlinks", false));
                        }
                        if target.starts_with('/') {
                            current.clear();
                        }
                        pending.extend(target.split('/').rev().map(str::to_owned));
                    }
                    _ => {
                        return Err(error(entry, &format!("{next:?} is not a directory"), false));
                    }
                },
                None if create => {
                    let implicit = Node::Dir {
                        meta: Meta::IMPLICIT_DIR,
                        xattrs: Xattrs::new(),
                        layer,
                        implicit: true,
                    };
                    self.nodes.insert(next.clone(), implicit);
                    current = next;
                }
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    fn subtree_keys(&self, path: &str) -> Vec<String> {
        if path.is_empty() {
            return self
                .nodes
                .keys()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect();
        }
        let prefix = format!("{path}/");
        self.nodes
            .range(prefix.clone()..)
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(&prefix))
            .cloned()
            .collect()
    }

    fn remove_subtree(&mut self, path: &str) {
        for key in self.subtree_keys(path) {
            self.nodes.remove(&key);
        }
        self.nodes.remove(path);
    }

    /// Removes what lower layers left at and under `path` (not `path`
    /// itself unless `with_self`); `layer`'s own entries and the
    /// directories leading to them stay.
    fn hide_lower(&mut self, path: &str, layer: usize, with_self: bool) {
        let mut keys = self.subtree_keys(path);
        if with_self && self.nodes.contains_key(path) {
            keys.push(path.to_owned());
        }
        let mut keep: HashSet<&str> = HashSet::new();
        for key in &keys {
            if self.nodes[key].layer() == layer {
                let mut at = key.as_str();
                while keep.insert(at) && at.len() > path.len() {
                    at = split(at).0;
                }
            }
        }
        let doomed: Vec<String> = keys
            .iter()
            .filter(|key| !keep.contains(key.as_str()))
            .cloned()
            .collect();
        for key in doomed {
            self.nodes.remove(&key);
        }
    }

    /// The finished tree.
    pub fn finish(self) -> Tree {
        let mut names: HashMap<usize, Vec<String>> = HashMap::new();
        let mut dirs = Vec::new();
        for (path, node) in self.nodes {
            match node {
                Node::Dir {
                    meta,
                    xattrs,
                    implicit,
                    ..
                } => dirs.push(Dir {
                    path,
                    meta,
                    xattrs,
                    implicit,
                }),
                Node::Inode { id, .. } => names.entry(id).or_default().push(path),
            }
        }
        let mut files = Vec::new();
        for (id, names) in names {
            files.push(FinalInode {
                inode: self.inodes[id].clone(),
                names,
            });
        }
        files.sort_by_key(|f| (f.inode.layer, f.inode.entry));
        Tree { dirs, files }
    }
}

fn dir(entry: &Entry, layer: usize) -> Node {
    Node::Dir {
        meta: entry.meta,
        xattrs: entry.xattrs.clone(),
        layer,
        implicit: false,
    }
}

fn error(path: &str, why: &str, escapes: bool) -> PlanError {
    PlanError {
        path: path.to_owned(),
        why: why.to_owned(),
        escapes,
    }
}

/// A directory of the final tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub path: String,
    pub meta: Meta,
    pub xattrs: Xattrs,
    pub implicit: bool,
}

/// An inode of the final tree with every path it has (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalInode {
    pub inode: Inode,
    pub names: Vec<String>,
}

/// The final tree: directories parents first (the root, `""`, first), and
/// inodes in layer and tar order.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub dirs: Vec<Dir>,
    pub files: Vec<FinalInode>,
}

impl Tree {
    /// Per layer: the regular files whose bytes come from it, by entry number.
    pub fn data_by_layer(&self, layers: usize) -> Vec<HashMap<usize, &FinalInode>> {
        let mut out = vec![HashMap::new(); layers];
        for file in &self.files {
            if matches!(file.inode.kind, Kind::File { .. }) {
                out[file.inode.layer].insert(file.inode.entry, file);
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
