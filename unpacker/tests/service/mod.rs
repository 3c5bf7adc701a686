//! Support for the service tests: `serve` on free ports with a `dir` or
//! stand-in CVMFS publisher, real `oci:` layouts, and a gated source for
//! unpacks that are under way while the test acts.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{Corrupt, Layer, write_layout};
use gha_proto::Envelope;
use gha_runtime::nats::NatsArgs;
use gha_testkit::eventually;
use gha_unpacker::image::{Descriptor, Platform};
use gha_unpacker::publish::cvmfs::CvmfsConfig;
use gha_unpacker::serve::{PublisherConfig, ServeConfig, serve_on};
use gha_unpacker::service::{Defaults, Opener, default_opener};
use gha_unpacker::source::{Fetched, ImageSource, SourceError};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token-1";
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A layout at `<dir>/<name>` with two layers (a whiteout between them),
/// the first holding `size` bytes of content in a few files.
pub fn layout(dir: &Path, name: &str, size: usize, corrupt: Corrupt) -> String {
    let chunk: String = name.chars().cycle().take(size / 4).collect();
    let base = Layer::new()
        .dir("etc")
        .file("etc/os-release", &format!("NAME={name}\n"))
        .file("etc/removed", "gone in layer 2")
        .dir("data")
        .file("data/a", &chunk)
        .file("data/b", &chunk)
        .file("data/c", &chunk)
        .file("data/d", &chunk);
    let top = Layer::new()
        .whiteout("etc/removed")
        .file("etc/added", "layer 2");
    let path = write_layout(&dir.join(name), "v1", vec![base, top], corrupt);
    format!("oci:{}:v1", path.display())
}

/// A running service and what it works in.
pub struct Running {
    pub url: String,
    pub admin: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
}

pub struct Setup {
    pub opener: Opener,
    pub publisher: PublisherConfig,
    pub state_dir: PathBuf,
    pub nats: Option<String>,
    pub sweep_interval: Duration,
    /// Where `oci:` sources may come from: the test's directory.
    pub local_source_dirs: Vec<PathBuf>,
}

impl Setup {
    pub fn dir(root: &Path) -> Self {
        Self {
            opener: default_opener(),
            publisher: PublisherConfig::Dir {
                root: root.join("images"),
            },
            state_dir: root.join("state"),
            nats: None,
            sweep_interval: Duration::from_secs(60),
            local_source_dirs: vec![root.to_path_buf()],
        }
    }

    pub async fn start(self) -> Running {
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", api.local_addr().unwrap());
        let admin_url = format!("http://{}", admin.local_addr().unwrap());
        let nats = self.nats.map(|url| {
            NatsArgs {
                urls: vec![url],
                creds_file: None,
                nkey_file: None,
                tls_ca_file: None,
            }
            .validate()
            .unwrap()
        });
        let config = ServeConfig {
            listen: api.local_addr().unwrap(),
            tokens: vec![SecretString::from(TOKEN)],
            publisher: self.publisher,
            state_dir: self.state_dir,
            defaults: Defaults {
                ttl: Duration::from_secs(3600),
                apptainer: false,
                platform: Platform::host(),
                parallel_layers: 2,
                local_source_dirs: self.local_source_dirs,
            },
            sweep_interval: self.sweep_interval,
            max_concurrent: 2,
            nats,
            admin_listen: None,
            registry: Default::default(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_on(
            api,
            Some(admin),
            config,
            self.opener,
            shutdown.clone(),
        ));
        Running {
            url,
            admin: admin_url,
            shutdown,
            task,
            http: reqwest::Client::new(),
        }
    }
}

impl Running {
    pub async fn post(&self, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/images", self.url))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The sum of the samples whose line starts with `line_prefix`.
    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(line_prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

pub fn encode<M: Envelope>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

pub fn text(path: &Value, file: &str) -> String {
    std::fs::read_to_string(Path::new(path.as_str().unwrap()).join(file)).unwrap()
}

/// The stand-in `cvmfs_server` on a temporary `/cvmfs`.
pub fn stand_in(root: &Path) -> CvmfsConfig {
    let script = gha_testkit::paths::repo_root().join("tests/fixtures/cvmfs_server");
    CvmfsConfig {
        repository: "images.test".into(),
        server: vec![
            "env".into(),
            format!("CVMFS_STANDIN_ROOT={}", root.join("cvmfs").display()),
            script.display().to_string(),
        ],
        mount_root: root.join("cvmfs"),
        subdir: "ci".into(),
        lease_subdir: false,
        ingest: false,
        gc: true,
        nested_catalogs: true,
        max_batch: 8,
    }
}

pub fn calls(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("cvmfs/.standin/calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|line| match line.split_once(' ') {
            Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest.to_owned(),
            _ => line.to_owned(),
        })
        .collect()
}

/// Closed until opened; blocking threads wait at it.
#[derive(Default)]
pub struct Gate {
    pub open: std::sync::Mutex<bool>,
    pub opened: std::sync::Condvar,
}

impl Gate {
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    pub fn wait(&self) {
        let open = self.open.lock().unwrap();
        drop(self.opened.wait_while(open, |open| !*open).unwrap());
    }
}

/// A source whose layer reads wait at `gate`: an unpack that is under way
/// until the test opens it.
pub struct Gated {
    pub inner: Box<dyn ImageSource>,
    pub gate: Arc<Gate>,
}

pub struct GatedRead {
    pub inner: Box<dyn Read + Send>,
    pub gate: Arc<Gate>,
}

impl Read for GatedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.gate.wait();
        self.inner.read(buf)
    }
}

impl ImageSource for Gated {
    fn root(&self) -> Result<Fetched, SourceError> {
        self.inner.root()
    }

    fn manifest(&self, descriptor: &Descriptor) -> Result<Fetched, SourceError> {
        self.inner.manifest(descriptor)
    }

    fn blob(&self, descriptor: &Descriptor) -> Result<Box<dyn Read + Send>, SourceError> {
        let inner = self.inner.blob(descriptor)?;
        if !descriptor.media_type.contains("layer") {
            return Ok(inner);
        }
        Ok(Box::new(GatedRead {
            inner,
            gate: self.gate.clone(),
        }))
    }
}

/// Starts an unpack of a gated image, shuts the service down while it is
/// under way, then lets the reads go on; returns the answer.
pub async fn interrupted(
    dir: &Path,
    publisher: PublisherConfig,
    opened: impl Fn() -> bool,
) -> (u16, Value) {
    let source = layout(dir, "interrupted", 1 << 20, Corrupt::Nothing);
    let gate = Arc::new(Gate::default());
    let mut setup = Setup::dir(dir);
    setup.publisher = publisher;
    let opener_gate = gate.clone();
    setup.opener = Arc::new(move |reference| {
        Ok(Box::new(Gated {
            inner: gha_unpacker::source::open_source(reference)?,
            gate: opener_gate.clone(),
        }) as Box<dyn ImageSource>)
    });
    let service = Arc::new(setup.start().await);
    let request = {
        let service = service.clone();
        tokio::spawn(async move { service.post(json!({"source": source})).await })
    };
    eventually("the unpack to start", DEADLINE, || async {
        opened().then_some(())
    })
    .await
    .unwrap();
    service.shutdown.cancel();
    gate.open();
    let answer = request.await.unwrap();
    Arc::into_inner(service).unwrap().stop().await;
    answer
}
