//! `gha-unpacker serve` end to end: real `oci:` layouts through the HTTP
//! API and NATS (a real nats-server), into a directory or the stand-in
//! CVMFS repository; and the `request` command against it.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gha_proto::consumer::Decode;
use gha_proto::v1::{UnpackRequest, UnpackResult, UnpackStatus};
use gha_proto::{Contract, Envelope, subjects};
use gha_runtime::nats::NatsArgs;
use gha_testkit::{NatsServer, eventually};
use gha_unpacker::image::{Descriptor, Platform};
use gha_unpacker::publish::cvmfs::CvmfsConfig;
use gha_unpacker::serve::{PublisherConfig, ServeConfig, serve_on};
use gha_unpacker::service::{Defaults, Opener, default_opener};
use gha_unpacker::source::{Fetched, ImageSource, SourceError};
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{Corrupt, Layer, write_layout};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "test-token-1";
const DEADLINE: Duration = Duration::from_secs(30);

/// A layout at `<dir>/<name>` with two layers (a whiteout between them),
/// the first holding `size` bytes of content in a few files.
fn layout(dir: &Path, name: &str, size: usize, corrupt: Corrupt) -> String {
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
struct Running {
    url: String,
    admin: String,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    http: reqwest::Client,
}

struct Setup {
    opener: Opener,
    publisher: PublisherConfig,
    state_dir: PathBuf,
    nats: Option<String>,
    sweep_interval: Duration,
}

impl Setup {
    fn dir(root: &Path) -> Self {
        Self {
            opener: default_opener(),
            publisher: PublisherConfig::Dir {
                root: root.join("images"),
            },
            state_dir: root.join("state"),
            nats: None,
            sweep_interval: Duration::from_secs(60),
        }
    }

    async fn start(self) -> Running {
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
            },
            sweep_interval: self.sweep_interval,
            max_concurrent: 2,
            nats,
            admin_listen: None,
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
    async fn post(&self, body: Value) -> (u16, Value) {
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

    async fn get(&self, path: &str) -> (u16, Value) {
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
    async fn metric(&self, line_prefix: &str) -> f64 {
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

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn encode<M: Envelope>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

fn text(path: &Value, file: &str) -> String {
    std::fs::read_to_string(Path::new(path.as_str().unwrap()).join(file)).unwrap()
}

#[tokio::test]
async fn http_publishes_lists_renews_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "alpha", 1024, Corrupt::Nothing);
    let service = Setup::dir(dir.path()).start().await;

    let (status, body) = service
        .post(json!({"source": source, "tag": "ci/alpha:v1"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "published");
    let digest = body["digest"].as_str().unwrap().to_owned();
    assert!(body["path"].as_str().unwrap().ends_with(&digest[7..]));
    assert_eq!(text(&body["path"], "etc/os-release"), "NAME=alpha\n");
    assert_eq!(text(&body["path"], "etc/added"), "layer 2");
    assert!(
        !Path::new(body["path"].as_str().unwrap())
            .join("etc/removed")
            .exists()
    );
    assert_eq!(text(&body["tag_path"], "etc/added"), "layer 2");
    assert!(
        body["sizes"]["files_written"].as_u64().unwrap() >= 5,
        "{body}"
    );
    assert!(body["timings"]["total_ms"].is_u64());

    let (status, again) = service
        .post(json!({"source": source, "ttl_seconds": 7200}))
        .await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("already_present"))
    );
    assert!(again["expires_unix_ms"].as_i64() > body["expires_unix_ms"].as_i64());

    let (status, list) = service.get("/images").await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, one) = service.get(&format!("/images/{digest}")).await;
    assert_eq!(
        (status, one["digest"].as_str()),
        (200, Some(digest.as_str()))
    );

    let deleted = service
        .http
        .delete(format!("{}/images/{digest}", service.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    assert!(!Path::new(body["path"].as_str().unwrap()).exists());
    assert_eq!(service.get(&format!("/images/{digest}")).await.0, 404);
    service.stop().await;
}

#[tokio::test]
async fn http_refuses_missing_and_wrong_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let service = Setup::dir(dir.path()).start().await;
    let bare = service
        .http
        .get(format!("{}/images", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status().as_u16(), 401);
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    for token in ["test-token-", "test-token-12", "wrong"] {
        let response = service
            .http
            .post(format!("{}/images", service.url))
            .bearer_auth(token)
            .json(&json!({"source": "oci:/nonexistent"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{token}");
    }
    service.stop().await;
}

#[tokio::test]
async fn concurrent_identical_requests_share_one_unpack() {
    let dir = tempfile::tempdir().unwrap();
    // Large enough that the requests overlap the unpack.
    let source = layout(dir.path(), "shared", 8 << 20, Corrupt::Nothing);
    let service = Arc::new(Setup::dir(dir.path()).start().await);
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let (service, source) = (service.clone(), source.clone());
            tokio::spawn(async move { service.post(json!({"source": source})).await })
        })
        .collect();
    let mut digests = Vec::new();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
        digests.push(body["digest"].as_str().unwrap().to_owned());
    }
    digests.dedup();
    assert_eq!(digests.len(), 1);
    let unpacks = service.metric("gha_unpacker_unpacks_total{").await;
    assert_eq!(unpacks, 1.0, "one publisher run for six requests");
    let answered = service.metric("gha_unpacker_requests_total{").await;
    assert_eq!(answered, 6.0);
    Arc::into_inner(service).unwrap().stop().await;
}

#[tokio::test]
async fn wait_false_answers_at_once_and_the_request_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "later", 1024, Corrupt::Nothing);
    let service = Setup::dir(dir.path()).start().await;
    let (status, body) = service.post(json!({"source": source, "wait": false})).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let path = body["path"].as_str().unwrap().to_owned();
    let answer = eventually("the request to finish", DEADLINE, || async {
        let (_, state) = service.get(&format!("/requests/{id}")).await;
        (state["status"] != "pending").then_some(state)
    })
    .await
    .unwrap();
    assert_eq!(answer["status"], "published", "{answer}");
    assert_eq!(answer["image"]["path"], path.as_str());
    assert!(Path::new(&path).join("etc/added").is_file());
    assert_eq!(service.get("/requests/unknown").await.0, 404);
    service.stop().await;
}

#[tokio::test]
async fn failures_are_json_with_a_status_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = layout(dir.path(), "corrupt", 1024, Corrupt::Blob);
    let service = Setup::dir(dir.path()).start().await;
    for (body, status, kind) in [
        (json!({"source": "ftp://x"}), 400, "bad_request"),
        (
            json!({"source": "oci:/x", "tag": "../escape"}),
            400,
            "bad_request",
        ),
        (
            json!({"source": "oci:/x", "platform": "linux"}),
            400,
            "bad_request",
        ),
        (
            json!({"source": format!("oci:{}/missing:v1", dir.path().display())}),
            404,
            "not_found",
        ),
        (json!({"source": corrupt}), 422, "bad_image"),
    ] {
        let (got, answer) = service.post(body.clone()).await;
        assert_eq!(
            (got, answer["kind"].as_str()),
            (status, Some(kind)),
            "{body}: {answer}"
        );
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (_, bad_json) = service.post(json!({"nope": 1})).await;
    assert_eq!(bad_json["kind"], "bad_request");
    let images = dir.path().join("images/.images");
    assert_eq!(
        std::fs::read_dir(&images).unwrap().count(),
        0,
        "nothing published, no temp dir"
    );
    service.stop().await;
}

#[tokio::test]
async fn records_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "kept", 1024, Corrupt::Nothing);
    let service = Setup::dir(dir.path()).start().await;
    let (_, first) = service.post(json!({"source": source})).await;
    service.stop().await;
    let service = Setup::dir(dir.path()).start().await;
    let (status, list) = service.get("/images").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["digest"], first["digest"]);
    let (_, again) = service.post(json!({"source": source})).await;
    assert_eq!(again["status"], "already_present");
    service.stop().await;
}

/// The stand-in `cvmfs_server` on a temporary `/cvmfs`.
fn stand_in(root: &Path) -> CvmfsConfig {
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

fn calls(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("cvmfs/.standin/calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|line| match line.split_once(' ') {
            Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest.to_owned(),
            _ => line.to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn expired_images_are_removed_from_cvmfs_and_collected() {
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "brief", 1024, Corrupt::Nothing);
    let mut setup = Setup::dir(dir.path());
    setup.publisher = PublisherConfig::Cvmfs(stand_in(dir.path()));
    setup.sweep_interval = Duration::from_millis(200);
    let service = setup.start().await;
    let (status, body) = service
        .post(json!({"source": source, "ttl_seconds": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    let path = PathBuf::from(body["path"].as_str().unwrap());
    assert!(path.starts_with(dir.path().join("cvmfs/images.test/ci/.images")));
    assert!(path.join("etc/added").is_file());
    let digest = body["digest"].as_str().unwrap().to_owned();
    eventually("the expired image to go", DEADLINE, || async {
        (service.get(&format!("/images/{digest}")).await.0 == 404).then_some(())
    })
    .await
    .unwrap();
    assert!(!path.exists());
    assert_eq!(
        calls(dir.path()),
        vec![
            "transaction images.test => 0",
            "publish images.test => 0",
            "transaction images.test => 0",
            "publish images.test => 0",
            "gc -f images.test => 0",
        ]
    );
    service.stop().await;
}

#[tokio::test]
async fn cvmfs_ingest_publishes_a_real_image_from_one_tar_stream() {
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "streamed", 64 << 10, Corrupt::Nothing);
    let mut setup = Setup::dir(dir.path());
    let mut cvmfs = stand_in(dir.path());
    cvmfs.ingest = true;
    setup.publisher = PublisherConfig::Cvmfs(cvmfs);
    let service = setup.start().await;
    let (status, body) = service.post(json!({"source": source})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(text(&body["path"], "etc/added"), "layer 2");
    assert_eq!(text(&body["tag_path"], "etc/os-release"), "NAME=streamed\n");
    assert!(
        !Path::new(body["path"].as_str().unwrap())
            .join("etc/removed")
            .exists()
    );
    let hex = &body["digest"].as_str().unwrap()[7..];
    assert_eq!(
        calls(dir.path()),
        vec![
            format!("ingest --tar_file - --base_dir ci/.images/{hex} --catalog images.test => 0"),
            "ingest --tar_file - --base_dir ci/tags images.test => 0".to_string(),
        ]
    );
    service.stop().await;
}

#[tokio::test]
async fn nats_requests_get_results_and_the_request_command_prints_the_path() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "viaNats", 1024, Corrupt::Nothing);
    let mut setup = Setup::dir(dir.path());
    setup.nats = Some(nats.url());
    let service = setup.start().await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let contract = Contract::new(client.clone());
    // The stream may not exist yet: the service creates it when it connects.
    contract.ensure_topology().await.unwrap();
    let mut results = client
        .subscribe(subjects::unpack_result("req-1"))
        .await
        .unwrap();
    client.flush().await.unwrap();
    contract
        .publish(&UnpackRequest {
            request_id: "req-1".into(),
            source: source.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let message = tokio::time::timeout(DEADLINE, results.next())
        .await
        .unwrap()
        .unwrap();
    let result = UnpackResult::decode_from(&message.subject, message.payload).unwrap();
    assert_eq!(
        result.status,
        UnpackStatus::Published as i32,
        "{}",
        result.error
    );
    assert!(Path::new(&result.path).join("etc/added").is_file());
    assert!(result.manifest_digest.starts_with("sha256:"));

    // A redelivery (the same request id again) is answered from the
    // record: the original answer, no second unpack.
    let mut headers = UnpackRequest::default().headers();
    headers.insert("Nats-Msg-Id", "req-1-redelivered");
    contract
        .jetstream()
        .publish_with_headers(
            subjects::UNPACK_REQUESTS,
            headers,
            encode(&UnpackRequest {
                request_id: "req-1".into(),
                source: source.clone(),
                ..Default::default()
            })
            .into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let message = tokio::time::timeout(DEADLINE, results.next())
        .await
        .unwrap()
        .unwrap();
    let again = UnpackResult::decode_from(&message.subject, message.payload).unwrap();
    assert_eq!(
        again.status,
        UnpackStatus::Published as i32,
        "from the record, not already_present"
    );
    assert_eq!(again.path, result.path);
    assert_eq!(service.metric("gha_unpacker_unpacks_total{").await, 1.0);

    // The CI step's command, over NATS and over HTTP.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let bin = env!("CARGO_BIN_EXE_gha-unpacker");
    for args in [
        vec!["request", &source, "--nats-url", &nats.url()],
        vec![
            "request",
            &source,
            "--url",
            &service.url,
            "--token-file",
            token_file.to_str().unwrap(),
            "--wait",
        ],
    ] {
        let output = tokio::process::Command::new(bin)
            .args(&args)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            format!("{}\n", result.path)
        );
    }
    let failed = tokio::process::Command::new(bin)
        .args(["request", "oci:/nonexistent:v1", "--url", &service.url])
        .args(["--token-file", token_file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    assert!(failed.stdout.is_empty());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("404"));
    service.stop().await;
}

/// Closed until opened; blocking threads wait at it.
#[derive(Default)]
struct Gate {
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn wait(&self) {
        let open = self.open.lock().unwrap();
        drop(self.opened.wait_while(open, |open| !*open).unwrap());
    }
}

/// A source whose layer reads wait at `gate`: an unpack that is under way
/// until the test opens it.
struct Gated {
    inner: Box<dyn ImageSource>,
    gate: Arc<Gate>,
}

struct GatedRead {
    inner: Box<dyn Read + Send>,
    gate: Arc<Gate>,
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
async fn interrupted(
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

#[tokio::test]
async fn shutdown_during_an_unpack_aborts_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let (status, body) = interrupted(
        dir.path(),
        PublisherConfig::Cvmfs(stand_in(dir.path())),
        || !calls(&root).is_empty(),
    )
    .await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (503, Some("shutting_down")),
        "{body}"
    );
    assert_eq!(
        calls(dir.path()),
        vec!["transaction images.test => 0", "abort -f images.test => 0"]
    );
    let images = dir.path().join("cvmfs/images.test/ci/.images");
    assert_eq!(
        std::fs::read_dir(&images).map(|d| d.count()).unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn shutdown_stops_an_unpack_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images/.images");
    let watched = images.clone();
    // The dir publisher would rename a finished tree into place: the unpack
    // itself must stop.
    let (status, body) = interrupted(
        dir.path(),
        PublisherConfig::Dir {
            root: dir.path().join("images"),
        },
        || std::fs::read_dir(&watched).is_ok_and(|mut d| d.next().is_some()),
    )
    .await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (503, Some("shutting_down")),
        "{body}"
    );
    assert_eq!(
        std::fs::read_dir(&images).unwrap().count(),
        0,
        "nothing published, no temp dir"
    );
}

#[tokio::test]
async fn the_binary_serves_from_its_flags_and_stops_cleanly_on_sigterm() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let bin = env!("CARGO_BIN_EXE_gha-unpacker");
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "binary", 1024, Corrupt::Nothing);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.to_str().unwrap();
    let mut child = tokio::process::Command::new(bin)
        .args([
            "--log-format",
            "json",
            "serve",
            "--no-nats",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--token-file", token_file])
        .arg("--publish")
        .arg(format!("dir:{}", dir.path().join("images").display()))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if event["message"] == "HTTP API" {
                return event["addr"].as_str().unwrap().to_owned();
            }
        }
        panic!("serve exited before listening");
    })
    .await
    .unwrap();
    // Keep draining the log so the service never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // Without --wait: the path the image will have, at once.
    let url = format!("http://{addr}");
    let output = tokio::process::Command::new(bin)
        .args([
            "request",
            &source,
            "--url",
            &url,
            "--token-file",
            token_file,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim_end());
    assert!(
        path.starts_with(dir.path().join("images/.images")),
        "{}",
        path.display()
    );
    eventually("the image to be published", DEADLINE, || async {
        path.join("etc/added").is_file().then_some(())
    })
    .await
    .unwrap();

    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
