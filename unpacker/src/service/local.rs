//! Whether the service reads a local source (`oci:`, `oci-archive:`,
//! `docker-archive:`) at a path a client named.
//!
//! Only paths under `--local-source-dirs` (symlinks resolved) are read.
//! A path outside answers the same whether it exists or not: a client must
//! not learn anything about the rest of the stratum-0 host's filesystem.
//! So the path is resolved as far as it exists ([`resolve`], the only
//! I/O), and [`decide`] (pure) refuses anything that is not known to lie
//! inside before it tells "not found" from "found".

use std::path::{Path, PathBuf};

/// How far a path resolves on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The whole path exists; this is its canonical form.
    Exists(PathBuf),
    /// The path does not exist; its deepest existing ancestor is this
    /// (canonical) directory.
    Missing { existing_ancestor: PathBuf },
    /// Something on the way cannot be resolved (a dangling symlink, a
    /// relative path without a base): where it leads is unknown.
    Unresolvable,
}

/// The verdict on a local source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Read,
    NotFound,
    Forbidden,
}

/// Resolves `path` as far as it exists.
pub fn resolve(path: &Path) -> Resolution {
    if let Ok(real) = std::fs::canonicalize(path) {
        return Resolution::Exists(real);
    }
    let mut current = path;
    while let Some(parent) = current.parent() {
        // A component that exists without resolving (a dangling symlink)
        // may point anywhere.
        if std::fs::symlink_metadata(current).is_ok() {
            return Resolution::Unresolvable;
        }
        if parent.as_os_str().is_empty() {
            break;
        }
        if let Ok(real) = std::fs::canonicalize(parent) {
            return Resolution::Missing {
                existing_ancestor: real,
            };
        }
        current = parent;
    }
    Resolution::Unresolvable
}

/// Reads only what resolves under one of `allowed` (canonical
/// directories); "not found" only for a path whose existing part lies
/// under one.
pub fn decide(resolution: &Resolution, allowed: &[PathBuf]) -> Verdict {
    let inside = |path: &Path| allowed.iter().any(|dir| path.starts_with(dir));
    match resolution {
        Resolution::Exists(real) if inside(real) => Verdict::Read,
        Resolution::Missing { existing_ancestor } if inside(existing_ancestor) => Verdict::NotFound,
        _ => Verdict::Forbidden,
    }
}

/// The allowed directories, canonical; those that do not exist are dropped.
pub fn canonical_dirs(dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter()
        .filter_map(|dir| std::fs::canonicalize(dir).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<PathBuf> {
        vec![PathBuf::from("/srv/layouts"), PathBuf::from("/data/ci")]
    }

    #[test]
    fn an_existing_path_inside_is_read() {
        let at = Resolution::Exists("/srv/layouts/img".into());
        assert_eq!(decide(&at, &allowed()), Verdict::Read);
    }

    #[test]
    fn a_missing_path_inside_is_not_found() {
        let at = Resolution::Missing {
            existing_ancestor: "/data/ci".into(),
        };
        assert_eq!(decide(&at, &allowed()), Verdict::NotFound);
    }

    #[test]
    fn outside_is_forbidden_whether_it_exists_or_not() {
        let exists = Resolution::Exists("/etc/shadow".into());
        let missing = Resolution::Missing {
            existing_ancestor: "/etc".into(),
        };
        assert_eq!(decide(&exists, &allowed()), Verdict::Forbidden);
        assert_eq!(decide(&missing, &allowed()), Verdict::Forbidden);
        // A prefix of a name is not a parent directory.
        let sibling = Resolution::Exists("/srv/layouts-old/img".into());
        assert_eq!(decide(&sibling, &allowed()), Verdict::Forbidden);
    }

    #[test]
    fn what_cannot_be_resolved_is_forbidden() {
        assert_eq!(
            decide(&Resolution::Unresolvable, &allowed()),
            Verdict::Forbidden
        );
        assert_eq!(
            decide(&Resolution::Exists("/srv/layouts/img".into()), &[]),
            Verdict::Forbidden
        );
    }

    #[test]
    fn resolve_stops_at_the_deepest_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("a")).unwrap();
        assert_eq!(resolve(&real.join("a")), Resolution::Exists(real.join("a")));
        assert_eq!(
            resolve(&real.join("a/b/c")),
            Resolution::Missing {
                existing_ancestor: real.join("a")
            }
        );
        // `..` after a missing component resolves no further.
        assert_eq!(
            resolve(&real.join("a/missing/../../..")),
            Resolution::Missing {
                existing_ancestor: real.join("a")
            }
        );
        std::os::unix::fs::symlink("/nonexistent/target", real.join("dangling")).unwrap();
        assert_eq!(resolve(&real.join("dangling")), Resolution::Unresolvable);
        assert_eq!(resolve(&real.join("dangling/x")), Resolution::Unresolvable);
    }
}
