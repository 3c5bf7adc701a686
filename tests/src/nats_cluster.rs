//! A three-node JetStream cluster of real `nats-server`s on loopback, as
//! sites run NATS: routes between every pair, one store per node, and the
//! means to kill and restart any node (the meta leader, a stream leader).
//!
//! Client and monitoring ports are the servers' own choice (`-1`, read from
//! their ports files). Route ports must be known before the first node
//! starts, so they are taken from the kernel (bind to port 0, release) just
//! before use; a restarted node comes back on its old ports and store.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::eventually::eventually_blocking;
use crate::nats::{find_binary, read_ports};

/// How long a node may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// The name of the cluster every node joins.
const CLUSTER: &str = "gha-test";

/// One node of the cluster.
struct Node {
    name: String,
    route_port: u16,
    client_port: u16,
    monitor_port: u16,
    child: Option<Child>,
    starts: u32,
}

/// A running three-node cluster owned by one test; dropping it kills every
/// node and removes the stores (kept, with log tails, when the test fails).
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: Option<TempDir>,
    binary: PathBuf,
}

impl NatsCluster {
    /// Starts three JetStream nodes routed to each other and waits until
    /// the cluster has elected a meta leader.
    pub fn start() -> anyhow::Result<Self> {
        let binary = find_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("gha-nats-cluster-")
            .tempdir()
            .context("creating the cluster's directory")?;
        let route_ports = free_ports(3)?;
        let nodes = route_ports
            .into_iter()
            .enumerate()
            .map(|(index, route_port)| Node {
                name: format!("n{}", index + 1),
                route_port,
                client_port: 0,
                monitor_port: 0,
                child: None,
                starts: 0,
            })
            .collect();
        let mut cluster = Self {
            nodes,
            dir: Some(dir),
            binary,
        };
        for index in 0..3 {
            cluster.spawn(index)?;
        }
        cluster.wait_for_meta_leader()?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated, as `--nats-url` takes it.
    pub fn urls(&self) -> String {
        self.url_list().join(",")
    }

    /// Every node's client URL, for a client library.
    pub fn url_list(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|index| self.url(index)).collect()
    }

    /// One node's client URL.
    pub fn url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[index].client_port)
    }

    /// The node called `name` (`n1`, `n2`, `n3`), as servers report names.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name == name)
    }

    /// The node that leads the JetStream meta group now, if one does.
    pub fn meta_leader(&self) -> Option<usize> {
        self.nodes.iter().find_map(|node| {
            node.child.as_ref()?;
            let jsz = http_get_json(node.monitor_port, "/jsz").ok()?;
            let leader = jsz.get("meta_cluster")?.get("leader")?.as_str()?;
            self.index_of(leader)
        })
    }

    /// Blocks until some node reports a meta leader.
    pub fn wait_for_meta_leader(&self) -> anyhow::Result<usize> {
        eventually_blocking("a JetStream meta leader", START_DEADLINE * 2, || {
            self.meta_leader()
        })
        .map_err(|err| anyhow::anyhow!("{err}; logs:\n{}", self.log_tails()))
    }

    /// SIGKILLs node `index`, keeping its store: a crash.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its old ports and store.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.kill(index);
        self.spawn(index)
    }

    /// Whether node `index` is running.
    pub fn is_up(&self, index: usize) -> bool {
        self.nodes[index].child.is_some()
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("directory exists until drop")
            .path()
    }

    fn log_path(&self, index: usize) -> PathBuf {
        let node = &self.nodes[index];
        self.dir()
            .join(format!("{}.{}.log", node.name, node.starts.max(1)))
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        self.nodes[index].starts += 1;
        let node = &self.nodes[index];
        let ports_dir = self
            .dir()
            .join(format!("ports.{}.{}", node.name, node.starts));
        std::fs::create_dir_all(&ports_dir)?;
        let store = self.dir().join(format!("store.{}", node.name));
        let routes = self
            .nodes
            .iter()
            .filter(|other| other.name != node.name)
            .map(|other| format!("nats-route://127.0.0.1:{}", other.route_port))
            .collect::<Vec<_>>()
            .join(",");
        // First start: the server picks its ports; a restart reuses them
        // so clients and routes find it where it was.
        let port = |port: u16| {
            if port == 0 {
                "-1".to_owned()
            } else {
                port.to_string()
            }
        };
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &port(node.client_port)])
            .args(["-m", &port(node.monitor_port)])
            .args(["-js", "--server_name", &node.name])
            .args(["--cluster_name", CLUSTER])
            .arg("--cluster")
            .arg(format!("nats://127.0.0.1:{}", node.route_port))
            .args(["--routes", &routes])
            .arg("-sd")
            .arg(&store)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .arg("-l")
            .arg(self.log_path(index))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.nodes[index].child = Some(child);
        let found = eventually_blocking("nats-server's ports file", START_DEADLINE, || {
            let ports = read_ports(&ports_dir)?;
            Some((ports.client?, ports.monitoring?))
        });
        match found {
            Ok((client, monitor)) => {
                self.nodes[index].client_port = client;
                self.nodes[index].monitor_port = monitor;
                Ok(())
            }
            Err(err) => {
                let log = std::fs::read_to_string(self.log_path(index)).unwrap_or_default();
                self.kill(index);
                bail!("{err}; node log:\n{log}")
            }
        }
    }

    fn log_tails(&self) -> String {
        (0..self.nodes.len())
            .map(|index| {
                let log = std::fs::read_to_string(self.log_path(index)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- {} ---\n{}",
                    self.nodes[index].name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        let tails = failing.then(|| self.log_tails());
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        if let Some(tails) = tails
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!(
                "nats cluster kept at {} (test failed); last log lines:\n{tails}",
                kept.display()
            );
        }
    }
}

/// `count` distinct loopback ports the kernel had free a moment ago.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    // Held together, so the kernel hands out distinct ports.
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .context("finding free route ports")?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

/// A GET of the monitoring endpoint, parsed as JSON (plain HTTP/1.0 on
/// loopback: no client library needed for one request).
fn http_get_json(port: u16, path: &str) -> anyhow::Result<serde_json::Value> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .context("no HTTP body")?;
    Ok(serde_json::from_str(body)?)
}
