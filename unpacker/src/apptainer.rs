//! The `--apptainer` fix-ups for images run by Apptainer from CVMFS:
//! everything readable by others (`a+rX`), the `.singularity.d` metadata
//! `apptainer build` writes for a Docker image (environment and runscript
//! from the image config), and the mount points Apptainer binds over.
//!
//! Apptainer runs the image as the calling user, so whatever that user
//! runs or reads must be readable by others; Apptainer itself reads the
//! image's `/etc/passwd` and `/etc/group` (it appends the user to copies
//! of them) and `/.singularity.d`, never the shadow files. Credential
//! files of the image ([`is_credential`]: password hashes, SSH host
//! private keys) are *emptied* instead of opened: on CVMFS a file's bytes
//! are content-addressed objects served to any client of the repository,
//! whatever its mode, so only leaving the bytes out keeps them private.
//! Each emptied file keeps its path and mode and is logged.
//!
//! Tree changes are pure ([`adjust`]); the few files are written by
//! [`write_extras`] (directory) or [`append_extras`] (tar stream).

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::flatten::entry::{Kind, Meta};
use crate::flatten::plan::{Dir, Tree};
use crate::image::ImageConfig;
use crate::unpack::UnpackError;

/// Where Apptainer mounts things; created when the image lacks them.
pub const MOUNT_POINTS: [&str; 6] = ["proc", "sys", "dev", "tmp", "cvmfs", "home"];

const METADATA_DIRS: [&str; 4] = [
    ".singularity.d",
    ".singularity.d/actions",
    ".singularity.d/env",
    ".singularity.d/libs",
];

/// Files that hold credentials in common base images.
pub const CREDENTIAL_FILES: [&str; 7] = [
    "etc/shadow",
    "etc/shadow-",
    "etc/gshadow",
    "etc/gshadow-",
    "etc/security/opasswd",
    "var/backups/shadow.bak",
    "var/backups/gshadow.bak",
];

/// Whether the image's file at `path` holds credentials: one of
/// [`CREDENTIAL_FILES`] or an SSH host private key
/// (`etc/ssh/ssh_host_*_key`).
pub fn is_credential(path: &str) -> bool {
    CREDENTIAL_FILES.contains(&path)
        || path
            .strip_prefix("etc/ssh/ssh_host_")
            .is_some_and(|rest| rest.ends_with("_key") && !rest.contains('/'))
}

/// A credential file of the image, emptied: written empty, with the mode
/// the image gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blanked {
    pub path: String,
    pub mode: u32,
}

/// `a+rX` on every inode and directory, plus the missing directories;
/// credential files are taken out of the tree, to be written empty (every
/// name of their inode: a hard link elsewhere holds the same bytes).
pub fn adjust(tree: &mut Tree, config: &ImageConfig) -> Vec<Blanked> {
    let mut blanked = Vec::new();
    tree.files.retain(|file| {
        let credential = matches!(file.inode.kind, Kind::File { .. })
            && file.names.iter().any(|name| is_credential(name));
        if credential {
            for name in &file.names {
                blanked.push(Blanked {
                    path: name.clone(),
                    mode: file.inode.meta.mode & 0o777,
                });
            }
        }
        !credential
    });
    for file in &blanked {
        tracing::warn!(
            path = %format!("/{}", file.path),
            "--apptainer: emptied a credential file of the image, so its bytes are not published"
        );
    }
    for dir in &mut tree.dirs {
        dir.meta.mode |= 0o555;
    }
    for file in &mut tree.files {
        let meta = &mut file.inode.meta;
        meta.mode |= 0o444;
        if meta.mode & 0o111 != 0 {
            meta.mode |= 0o111;
        }
    }
    let taken: std::collections::HashSet<String> = tree
        .dirs
        .iter()
        .map(|d| d.path.clone())
        .chain(tree.files.iter().flat_map(|f| f.names.iter().cloned()))
        .collect();
    for path in MOUNT_POINTS.iter().chain(METADATA_DIRS.iter()) {
        if !taken.contains(*path) {
            let mode = if *path == "tmp" { 0o1777 } else { 0o755 };
            tree.dirs.push(Dir {
                path: (*path).to_owned(),
                meta: Meta {
                    mode,
                    ..Meta::IMPLICIT_DIR
                },
                xattrs: Vec::new(),
                implicit: false,
            });
        }
    }
    tree.dirs.sort_by(|a, b| a.path.cmp(&b.path));
    // A file already at an extra's path is replaced by the extra.
    for (path, _, _) in extras(config, &[]) {
        for file in &mut tree.files {
            file.names.retain(|name| *name != path);
        }
    }
    tree.files.retain(|f| !f.names.is_empty());
    blanked
}

/// The `.singularity.d` files and the emptied credential files: (path,
/// mode, content).
pub fn extras(config: &ImageConfig, blanked: &[Blanked]) -> Vec<(String, u32, String)> {
    let run = config.config.clone().unwrap_or_default();
    let mut env =
        String::from("#!/bin/sh\n# From the image config, as `apptainer build` writes it.\n");
    for pair in run.env.unwrap_or_default() {
        if let Some((key, value)) = pair.split_once('=')
            && !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            env.push_str(&format!("export {key}={}\n", quote(value)));
        }
    }
    let entrypoint: Vec<String> = run.entrypoint.unwrap_or_default();
    let cmd: Vec<String> = run.cmd.unwrap_or_default();
    let words = |list: &[String]| list.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    let mut runscript = String::from("#!/bin/sh\n# Entrypoint and Cmd of the image config.\n");
    match (entrypoint.is_empty(), cmd.is_empty()) {
        (true, true) => runscript.push_str("exec /bin/sh \"$@\"\n"),
        (true, false) => runscript.push_str(&format!(
            "if [ $# -gt 0 ]; then exec \"$@\"; fi\nexec {}\n",
            words(&cmd)
        )),
        (false, _) => runscript.push_str(&format!(
            "if [ $# -gt 0 ]; then exec {} \"$@\"; fi\nexec {}\n",
            words(&entrypoint),
            words(&[entrypoint.clone(), cmd].concat())
        )),
    }
    let action = |body: &str| {
        format!(
            "#!/bin/sh\nfor script in /.singularity.d/env/*.sh; do\n    [ -f \"$script\" ] && . \"$script\"\ndone\n{body}\n"
        )
    };
    let emptied = blanked
        .iter()
        .map(|file| (file.path.clone(), file.mode, String::new()));
    [
        (
            ".singularity.d/env/10-docker2singularity.sh".into(),
            0o755,
            env,
        ),
        (".singularity.d/runscript".into(), 0o755, runscript),
        (
            ".singularity.d/actions/exec".into(),
            0o755,
            action("exec \"$@\""),
        ),
        (
            ".singularity.d/actions/run".into(),
            0o755,
            action("exec /.singularity.d/runscript \"$@\""),
        ),
        (
            ".singularity.d/actions/shell".into(),
            0o755,
            action("exec /bin/sh \"$@\""),
        ),
    ]
    .into_iter()
    .chain(emptied)
    .collect()
}

/// `value` in single quotes for `sh`.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Writes the extras into an unpacked tree at `root`.
pub fn write_extras(
    root: &Path,
    config: &ImageConfig,
    blanked: &[Blanked],
) -> Result<(), UnpackError> {
    for (path, mode, content) in extras(config, blanked) {
        let path = root.join(path);
        let io = |source| UnpackError::Io {
            what: path.display().to_string(),
            source,
        };
        std::fs::write(&path, content).map_err(io)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    Ok(())
}

/// Appends the extras to a tar stream.
pub fn append_extras(
    builder: &mut tar::Builder<&mut dyn Write>,
    config: &ImageConfig,
    blanked: &[Blanked],
) -> io::Result<()> {
    for (path, mode, content) in extras(config, blanked) {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(mode);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        builder.append_data(&mut header, path, content.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_files_are_the_shadow_family_and_ssh_host_private_keys() {
        for path in [
            "etc/shadow",
            "etc/gshadow-",
            "etc/security/opasswd",
            "etc/ssh/ssh_host_ed25519_key",
            "etc/ssh/ssh_host_rsa_key",
        ] {
            assert!(is_credential(path), "{path}");
        }
        for path in [
            "etc/passwd",
            "etc/group",
            "etc/ssh/ssh_host_ed25519_key.pub",
            "etc/ssh/sshd_config",
            "etc/ssh/ssh_host_dir/x_key",
            "home/etc/shadow",
        ] {
            assert!(!is_credential(path), "{path}");
        }
    }
}
