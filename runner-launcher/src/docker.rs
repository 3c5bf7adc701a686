//! A rootless Docker daemon for one job: Debian's `dockerd-rootless.sh`
//! (docker.io, with rootlesskit, uidmap and slirp4netns) started as the
//! runner's unprivileged user, everything of it inside one directory of the
//! job's work dir, and torn down with the job.
//!
//! Inside `dir` (created 0700, owned by the daemon's user, removed by
//! [`RootlessDocker::stop`]): `home/` (`HOME`), `run/` (`XDG_RUNTIME_DIR`:
//! the socket `run/docker.sock`, the exec root, the pid file), `data/`
//! (`--data-root`), `dockerd.log`. Never a shared `/run/user` or `/tmp/run`:
//! two jobs of one user on one node get two daemons. Without systemd there
//! are no cgroup delegations: `--exec-opt native.cgroupdriver=cgroupfs`.
//!
//! The daemon does not die with the job on its own, and containers outlive
//! it unless killed: every process of the daemon (rootlesskit's, dockerd's,
//! containerd's, the containers') lives in the user namespace rootlesskit
//! made, so `stop` stops dockerd, then SIGKILLs whatever is still in that
//! namespace, then removes `dir` (through `rootlesskit rm -rf` when not
//! root: the data root holds files of the user's subordinate ids).
//!
//! The runner's container reaches the daemon through [`RootlessDocker::socket`]
//! bound at `/run/gha-docker.sock` (a tmpfs `/run`: the image's is
//! read-only) with `DOCKER_HOST=unix:///run/gha-docker.sock`. It must run as
//! the daemon's user outside, as a Slurm job runs both: a runtime started by
//! root cannot even resolve the socket inside the 0700 `run/` (`bwrap: Can't
//! find source path .../docker.sock: Permission denied`).
//!
//! Networks ([`DockerNetwork`]): slirp4netns (containers get their own
//! network) needs `/dev/net/tun` usable by the user (mode 0666 on a
//! standard Debian host; 0600 on some VMs and containers, where rootlesskit
//! fails with `setting up tap tap0: ... open: Permission denied`); `Host`
//! runs the daemon in the host's network namespace with no bridge, which
//! works without the tun device (containers use `--network host` or none).

mod args;
mod host;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};

pub use args::{DaemonLayout, daemon_env, dockerd_args, resolve_network};
pub use host::processes_in_namespace;
use host::{daemon_pid, log_tail, ping, prepare_dirs, remove_dir, signal, tun_usable};

/// Where Debian's docker.io installs the script.
pub const DEBIAN_DOCKERD_ROOTLESS: &str = "/usr/share/docker.io/contrib/dockerd-rootless.sh";
/// The longest path a unix socket may have (`sun_path` is 108 bytes).
const MAX_SOCKET_PATH: usize = 107;
/// How often start and stop look again.
const POLL: Duration = Duration::from_millis(100);

/// Who the daemon runs as, when the launcher runs as root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// The daemon's network, see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerNetwork {
    /// slirp4netns if `/dev/net/tun` is usable by the daemon's user, else
    /// `Host`.
    Auto,
    Slirp4netns,
    Host,
}

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// `dockerd-rootless.sh`.
    pub dockerd_rootless: PathBuf,
    /// The runner's user, when the launcher is root; `None`: the launcher's
    /// own user (which must not be root).
    pub run_as: Option<RunAs>,
    pub network: DockerNetwork,
    /// `--storage-driver` (e.g. `vfs`, `fuse-overlayfs`); `None`: dockerd's
    /// choice (overlay2 in a user namespace on kernels >= 5.11).
    pub storage_driver: Option<String>,
    /// More dockerd flags.
    pub extra_args: Vec<String>,
    /// `PATH` of the daemon: where dockerd, containerd, runc, rootlesskit,
    /// slirp4netns and newuidmap are.
    pub path: OsString,
    /// How long the socket may take to answer.
    pub start_timeout: Duration,
    /// How long dockerd may take to stop before its processes are killed.
    /// Short: the data is thrown away, and dockerd waits a container's own
    /// stop timeout (10 s) for one that ignores SIGTERM (a shell as PID 1).
    pub stop_timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            dockerd_rootless: PathBuf::from(DEBIAN_DOCKERD_ROOTLESS),
            run_as: None,
            network: DockerNetwork::Auto,
            storage_driver: None,
            extra_args: Vec::new(),
            path: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            start_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(3),
        }
    }
}

/// Why the daemon did not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("{} not found: install docker.io, rootlesskit, uidmap and slirp4netns", .0.display())]
    NotInstalled(PathBuf),
    #[error("rootless Docker does not run as root: set the runner's user")]
    Root,
    #[error("the docker socket path {} is longer than {MAX_SOCKET_PATH} bytes", .0.display())]
    SocketPathTooLong(PathBuf),
    #[error("preparing {}: {source}", .path.display())]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {}: {source}", .path.display())]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rootless dockerd exited ({status}) before its socket answered:\n{log}")]
    Exited { status: ExitStatus, log: String },
    #[error("rootless dockerd's socket did not answer within {after:?}:\n{log}")]
    Timeout { after: Duration, log: String },
    #[error("removing {}: {detail}", .path.display())]
    Cleanup { path: PathBuf, detail: String },
}

impl DockerError {
    /// A short label for metrics and events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotInstalled(_) => "not_installed",
            Self::Root => "root",
            Self::SocketPathTooLong(_) => "socket_path_too_long",
            Self::Prepare { .. } => "prepare",
            Self::Spawn { .. } => "spawn",
            Self::Exited { .. } => "exited",
            Self::Timeout { .. } => "timeout",
            Self::Cleanup { .. } => "cleanup",
        }
    }
}

/// A running rootless dockerd.
#[derive(Debug)]
pub struct RootlessDocker {
    layout: DaemonLayout,
    /// `dockerd-rootless.sh`, which became rootlesskit's parent process.
    child: Child,
    /// `user:[inode]` of the namespace every process of the daemon is in.
    user_namespace: String,
    /// Whether `dir` can be removed directly (the launcher is root).
    as_root: bool,
    stop_timeout: Duration,
}

impl RootlessDocker {
    /// Starts the daemon with everything inside `dir` (created; must not
    /// hold another daemon) and waits for its socket to answer `/_ping`.
    pub async fn start(dir: &Path, config: &DockerConfig) -> Result<Self, DockerError> {
        if !config.dockerd_rootless.is_file() {
            return Err(DockerError::NotInstalled(config.dockerd_rootless.clone()));
        }
        let as_root = rustix::process::geteuid().is_root();
        let (uid, gid) = match (config.run_as, as_root) {
            (Some(user), true) => (user.uid, user.gid),
            (_, false) => (
                rustix::process::getuid().as_raw(),
                rustix::process::getgid().as_raw(),
            ),
            (None, true) => return Err(DockerError::Root),
        };
        if uid == 0 {
            return Err(DockerError::Root);
        }
        let layout = DaemonLayout::new(dir);
        if layout.socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(DockerError::SocketPathTooLong(layout.socket));
        }
        prepare_dirs(&layout, as_root.then_some((uid, gid)))?;
        let network = resolve_network(config.network, tun_usable(uid, gid));
        let log = std::fs::File::create(&layout.log).map_err(|source| DockerError::Prepare {
            path: layout.log.clone(),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| DockerError::Prepare {
            path: layout.log.clone(),
            source,
        })?;
        let mut command = Command::new(&config.dockerd_rootless);
        command
            .args(dockerd_args(&layout, config, network))
            .env_clear()
            .envs(daemon_env(&layout, config, network))
            .current_dir(&layout.home)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .kill_on_drop(true);
        if as_root {
            command.uid(uid).gid(gid);
        }
        tracing::info!(dir = %dir.display(), ?network, uid, "starting rootless dockerd");
        let mut child = command.spawn().map_err(|source| DockerError::Spawn {
            path: config.dockerd_rootless.clone(),
            source,
        })?;
        let deadline = tokio::time::Instant::now() + config.start_timeout;
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                let log = log_tail(&layout.log);
                abandon(&layout, child, as_root).await;
                return Err(DockerError::Exited { status, log });
            }
            if ping(&layout.socket).await {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let log = log_tail(&layout.log);
                abandon(&layout, child, as_root).await;
                return Err(DockerError::Timeout {
                    after: config.start_timeout,
                    log,
                });
            }
            tokio::time::sleep(POLL).await;
        }
        let user_namespace = daemon_pid(&layout)
            .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok())
            .map(|link| link.to_string_lossy().into_owned())
            .unwrap_or_default();
        tracing::info!(socket = %layout.socket.display(), %user_namespace, "rootless dockerd is up");
        Ok(Self {
            layout,
            child,
            user_namespace,
            as_root,
            stop_timeout: config.stop_timeout,
        })
    }

    /// The daemon's socket, to bind into the runner's container.
    pub fn socket(&self) -> &Path {
        &self.layout.socket
    }

    /// `DOCKER_HOST` for a client on this host: `unix://<socket>`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.layout.socket.display())
    }

    /// The daemon's directories.
    pub fn layout(&self) -> &DaemonLayout {
        &self.layout
    }

    /// Stops dockerd (SIGTERM, then [`DockerConfig::stop_timeout`]),
    /// SIGKILLs whatever of the daemon is left (containers included), and
    /// removes its directory. Returns how many processes had to be killed.
    pub async fn stop(mut self) -> Result<usize, DockerError> {
        if let Some(pid) = daemon_pid(&self.layout) {
            signal(pid, Signal::TERM);
        }
        let exited = tokio::time::timeout(self.stop_timeout, self.child.wait()).await;
        if exited.is_err() {
            tracing::warn!(timeout = ?self.stop_timeout, "rootless dockerd did not stop; killing it");
        }
        let mut killed = 0;
        for _ in 0..50 {
            let left = processes_in_namespace(&self.user_namespace);
            if left.is_empty() {
                break;
            }
            killed += left.len();
            for pid in left {
                signal(pid, Signal::KILL);
            }
            tokio::time::sleep(POLL).await;
        }
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        remove_dir(&self.layout.dir, self.as_root).await?;
        tracing::info!(killed, "rootless dockerd stopped and removed");
        Ok(killed)
    }
}

/// After a failed start: kills the daemon's process group and what is in
/// its namespace, removes its directory; errors are logged, the start's
/// error is what the caller gets.
async fn abandon(layout: &DaemonLayout, mut child: Child, as_root: bool) {
    let namespace = daemon_pid(layout)
        .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/ns/user")).ok())
        .map(|link| link.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(group) = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
    }
    for pid in processes_in_namespace(&namespace) {
        signal(pid, Signal::KILL);
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    if let Err(err) = remove_dir(&layout.dir, as_root).await {
        tracing::warn!(error = %err, "cleaning up after a failed start");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_path_too_long_for_sun_path_is_refused_before_anything_starts() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let config = DockerConfig {
            dockerd_rootless: PathBuf::from("/bin/sh"),
            run_as: Some(RunAs {
                uid: 1001,
                gid: 1001,
            }),
            ..DockerConfig::default()
        };
        let err = RootlessDocker::start(&long, &config).await.unwrap_err();
        assert!(
            matches!(err, DockerError::SocketPathTooLong(_) | DockerError::Root),
            "{err}"
        );
        assert!(!long.exists());
    }

    #[tokio::test]
    async fn a_missing_script_is_not_installed() {
        let config = DockerConfig {
            dockerd_rootless: PathBuf::from("/nonexistent/dockerd-rootless.sh"),
            ..DockerConfig::default()
        };
        let err = RootlessDocker::start(Path::new("/tmp/x"), &config)
            .await
            .unwrap_err();
        assert_eq!(err.label(), "not_installed");
    }
}
