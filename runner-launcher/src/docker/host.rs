//! What the daemon needs of the host, and how it is cleaned off it: the
//! tun device, its directories, its processes (found by user namespace),
//! its socket's `/_ping`, its log.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Stdio;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{DaemonLayout, DockerError, POLL};

/// Whether `/dev/net/tun` can be opened read-write by `uid`/`gid`.
pub(super) fn tun_usable(uid: u32, gid: u32) -> bool {
    let Ok(meta) = std::fs::metadata("/dev/net/tun") else {
        return false;
    };
    let mode = meta.mode();
    let rw = |shift: u32| (mode >> shift) & 0o6 == 0o6;
    rw(0) || (meta.uid() == uid && rw(6)) || (meta.gid() == gid && rw(3))
}

/// `dir` and its parts, 0700, owned by the daemon's user when `owner` is
/// given (the launcher is root).
pub(super) fn prepare_dirs(
    layout: &DaemonLayout,
    owner: Option<(u32, u32)>,
) -> Result<(), DockerError> {
    for path in [&layout.dir, &layout.home, &layout.runtime, &layout.data] {
        let prepared = std::fs::create_dir_all(path)
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)))
            .and_then(|()| match owner {
                Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
                None => Ok(()),
            });
        prepared.map_err(|source| DockerError::Prepare {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// dockerd's pid, from its pid file.
pub(super) fn daemon_pid(layout: &DaemonLayout) -> Option<i32> {
    std::fs::read_to_string(&layout.pidfile)
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(super) fn signal(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Every process whose user namespace is `namespace` (`user:[inode]`),
/// never the caller's own: a daemon's stale pid file whose pid was reused
/// by a process of the host would otherwise name the host's namespace, and
/// the caller would kill every process on the node (it did: the machine's
/// own dockerd went with a test's daemon).
pub fn processes_in_namespace(namespace: &str) -> Vec<i32> {
    let own = std::fs::read_link("/proc/self/ns/user").ok();
    if namespace.is_empty() || own.is_some_and(|own| own.as_os_str() == namespace) {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/user"))
                .is_ok_and(|link| link.as_os_str() == namespace)
        })
        .collect()
}

/// Removes `dir`; as an unprivileged user, through `rootlesskit rm -rf`,
/// whose user namespace maps the subordinate ids owning the data root.
pub(super) async fn remove_dir(dir: &Path, as_root: bool) -> Result<(), DockerError> {
    let cleanup = |detail: String| DockerError::Cleanup {
        path: dir.to_path_buf(),
        detail,
    };
    if !as_root {
        let output = Command::new("rootlesskit")
            .args(["rm", "-rf", "--"])
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|err| cleanup(format!("rootlesskit rm: {err}")))?;
        if !output.status.success() {
            return Err(cleanup(
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ));
        }
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(cleanup(err.to_string())),
    }
}

/// Does the socket answer `GET /_ping` with 200?
pub(super) async fn ping(socket: &Path) -> bool {
    let Ok(Ok(mut stream)) =
        tokio::time::timeout(POLL * 5, tokio::net::UnixStream::connect(socket)).await
    else {
        return false;
    };
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(POLL * 20, stream.read_to_end(&mut answer)).await;
    read.is_ok() && (answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200"))
}

/// The last lines of the daemon's log, for an error.
pub(super) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("+ "))
        .collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_own_user_namespace_is_never_swept() {
        let own = std::fs::read_link("/proc/self/ns/user").unwrap();
        assert!(
            processes_in_namespace(&own.to_string_lossy()).is_empty(),
            "sweeping our own namespace would kill every process of the host"
        );
        assert!(processes_in_namespace("").is_empty());
    }
}
