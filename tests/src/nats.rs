//! A real JetStream `nats-server` per test, on a free loopback port.
//!
//! The server picks its own port (`-p -1`) and reports it in a ports file, so
//! parallel tests never race for a port. Dropping the fixture kills the
//! server and removes its store; if the test is failing (panicking), the
//! directory is kept and its log printed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::eventually::eventually_blocking;

/// How long a server may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running `nats-server -js` owned by one test.
pub struct NatsServer {
    child: Option<Child>,
    dir: Option<TempDir>,
    binary: PathBuf,
    port: u16,
    starts: u32,
}

impl NatsServer {
    /// Starts a server with JetStream on 127.0.0.1 and a free port.
    pub fn start() -> anyhow::Result<Self> {
        let binary = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("gha-nats-")
            .tempdir()
            .context("creating the server's directory")?;
        let mut server = Self {
            child: None,
            dir: Some(dir),
            binary,
            port: 0,
            starts: 0,
        };
        server.spawn(None)?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("directory exists until drop")
            .path()
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir().join("store")
    }

    /// The log of the current (or last) server process.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join(format!("nats-server.{}.log", self.starts))
    }

    /// Kills the server abruptly (SIGKILL), keeping its store: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store, as after
    /// a crash or a restart.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn(Some(self.port))
    }

    fn spawn(&mut self, port: Option<u16>) -> anyhow::Result<()> {
        self.starts += 1;
        let ports_dir = self.dir().join(format!("ports.{}", self.starts));
        std::fs::create_dir_all(&ports_dir)?;
        let port_arg = port.map_or_else(|| "-1".to_string(), |port| port.to_string());
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js"])
            .arg("-sd")
            .arg(self.store_dir())
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .arg("-l")
            .arg(self.log_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        let found = eventually_blocking("nats-server's ports file", START_DEADLINE, || {
            read_client_port(&ports_dir)
        });
        match found {
            Ok(port) => {
                self.port = port;
                Ok(())
            }
            Err(err) => {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                self.kill();
                bail!("{err}; server log:\n{log}")
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            let log_path = kept.join(format!("nats-server.{}.log", self.starts));
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "nats-server kept at {} (test failed); last log lines:\n{}",
                kept.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// The ports a server reported in its ports file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ports {
    pub client: Option<u16>,
    pub monitoring: Option<u16>,
}

/// The ports in `<dir>/nats-server_<pid>.ports`
/// (`{"nats":["nats://..."],"monitoring":["http://..."]}`).
pub(crate) fn read_ports(dir: &Path) -> Option<Ports> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|entry| entry.file_name().to_string_lossy().ends_with(".ports"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
    let port = |key: &str| -> Option<u16> {
        let url = ports.get(key)?.get(0)?.as_str()?;
        url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
    };
    Some(Ports {
        client: port("nats"),
        monitoring: port("monitoring"),
    })
}

fn read_client_port(dir: &Path) -> Option<u16> {
    read_ports(dir)?.client
}

/// `$GHA_NATS_SERVER`, `nats-server` on `PATH`, or where
/// `deploy/local/install-deps` puts it.
pub(crate) fn find_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("GHA_NATS_SERVER") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("nats-server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/opt/slurm-actions-tools/bin/nats-server")])
        .find(|candidate| candidate.is_file())
        .context("nats-server (2.10 or newer) not found: run deploy/local/install-deps")
}
