//! What publishing through the service adds to an unpack.
//!
//! The image is the unpack benchmark's generated one (`PUBLISH_BENCH_MB`
//! uncompressed, default 300), in an `oci:` layout on tmpfs. Measured in
//! one process, in interleaved rounds (the machine is shared), best of
//! three each:
//!
//! - baseline: open, resolve and `unpack_to_dir` straight into tmpfs;
//! - the `dir` publisher called directly: the same plus a temp dir, the
//!   rename and a tag link;
//! - `POST /images` (`wait: true`) to `serve` with the `dir` publisher on
//!   tmpfs, until the 200: resolve, single flight, temp dir, rename, tag
//!   link, record saved; then `DELETE` (not timed);
//! - an image already published: 500 sequential `POST /images` answered
//!   `already_present` (resolve, TTL renewal, record saved), p50 and p99.
//!
//! `cargo bench -p gha-unpacker --bench publish`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gha_unpacker::image::Platform;
use gha_unpacker::publish::dir::DirPublisher;
use gha_unpacker::publish::{ImageContent, PublishJob, Publisher};
use gha_unpacker::serve::{PublisherConfig, ServeConfig, serve_on};
use gha_unpacker::service::{Defaults, default_opener};
use gha_unpacker::source::{ImageSource, SourceRef, open_source};
use gha_unpacker::unpack::{ResolvedImage, UnpackOptions, resolve, unpack_to_dir};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[path = "unpack/generate.rs"]
mod generate;

const TAG: &str = "bench";
const TOKEN: &str = "bench";
const ROUNDS: usize = 3;
const PRESENT_REQUESTS: usize = 500;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let megabytes: u64 = std::env::var("PUBLISH_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let base = PathBuf::from(format!("/dev/shm/gha-unpacker-bench-{megabytes}"));
    let layout = base.join("layout");
    let sizes = generate::generate(&layout, megabytes << 20);
    let uncompressed: u64 = sizes.iter().map(|s| s.0).sum();
    eprintln!(
        "image: {} layers, {:.0} MB uncompressed",
        sizes.len(),
        uncompressed as f64 / 1e6
    );
    let source = format!("oci:{}:{}", layout.display(), TAG);
    let work = base.join("publish-work");
    remove(&work);
    std::fs::create_dir_all(&work).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let service = runtime.block_on(Service::start(&work));
    // Interleaved rounds, best of each: the machine is shared.
    let (mut baseline, mut direct, mut published) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        baseline.push(raw_unpack(&source, &work.join("raw")));
        direct.push(dir_publish(&source, &work.join("direct")));
        published.push(runtime.block_on(service.publish(&source)));
    }
    let present = runtime.block_on(service.already_present(&source));
    runtime.block_on(service.stop());
    let (baseline, direct, published) = (min(baseline), min(direct), min(published));

    let mb = uncompressed as f64 / 1e6;
    println!("| path | time | MB/s | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| baseline: unpack_to_dir | {:.3} s | {:.0} | 1.00x |",
        baseline.as_secs_f64(),
        mb / baseline.as_secs_f64()
    );
    println!(
        "| DirPublisher::publish | {:.3} s | {:.0} | {:.2}x |",
        direct.as_secs_f64(),
        mb / direct.as_secs_f64(),
        direct.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "| POST /images, dir publisher | {:.3} s | {:.0} | {:.2}x |",
        published.as_secs_f64(),
        mb / published.as_secs_f64(),
        published.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "\nalready present ({PRESENT_REQUESTS} sequential requests): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(present[present.len() / 2]),
        ms(present[present.len() * 99 / 100]),
        ms(*present.last().unwrap())
    );
    remove(&work);
}

fn options() -> UnpackOptions {
    UnpackOptions {
        apptainer: false,
        ..UnpackOptions::default()
    }
}

fn opened(source: &str) -> (Box<dyn ImageSource>, ResolvedImage) {
    let reference: SourceRef = source.parse().unwrap();
    let opened = open_source(&reference).unwrap();
    let image = resolve(opened.as_ref(), &options()).unwrap();
    (opened, image)
}

/// Open, resolve, unpack_to_dir.
fn raw_unpack(source: &str, dest: &Path) -> Duration {
    let started = Instant::now();
    let (opened, image) = opened(source);
    unpack_to_dir(opened.as_ref(), &image, dest, &options()).unwrap();
    let elapsed = started.elapsed();
    remove(dest);
    elapsed
}

/// Open, resolve, DirPublisher::publish (temp dir, rename, tag link).
fn dir_publish(source: &str, root: &Path) -> Duration {
    let started = Instant::now();
    let (opened, image) = opened(source);
    let publisher = DirPublisher::open(root, CancellationToken::new()).unwrap();
    let digest = image.manifest_digest.clone();
    let content = ImageContent {
        source: Arc::from(opened),
        image,
        options: options(),
    };
    publisher
        .publish(PublishJob {
            digest,
            tag: Some("bench/image:1".parse().unwrap()),
            content: Arc::new(content),
        })
        .unwrap();
    let elapsed = started.elapsed();
    remove(root);
    elapsed
}

/// `serve` with the dir publisher, on tmpfs.
struct Service {
    url: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Service {
    async fn start(work: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = ServeConfig {
            listen: listener.local_addr().unwrap(),
            tokens: vec![SecretString::from(TOKEN)],
            publisher: PublisherConfig::Dir {
                root: work.join("images"),
            },
            state_dir: work.join("state"),
            defaults: Defaults {
                ttl: Duration::from_secs(3600),
                apptainer: false,
                platform: Platform::host(),
                parallel_layers: options().parallel_layers,
                local_source_dirs: vec![work.parent().unwrap().to_path_buf()],
            },
            sweep_interval: Duration::from_secs(3600),
            max_concurrent: 2,
            nats: None,
            admin_listen: None,
            registry: Default::default(),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_on(
            listener,
            None,
            config,
            default_opener(),
            shutdown.clone(),
        ));
        Self {
            url,
            http: reqwest::Client::new(),
            shutdown,
            task,
        }
    }

    async fn post(&self, source: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/images", self.url))
            .bearer_auth(TOKEN)
            .json(&json!({"source": source}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    }

    /// One POST until published, then a DELETE (not timed).
    async fn publish(&self, source: &str) -> Duration {
        let started = Instant::now();
        let body = self.post(source).await;
        let elapsed = started.elapsed();
        assert_eq!(body["status"], "published");
        let digest = body["digest"].as_str().unwrap();
        let deleted = self
            .http
            .delete(format!("{}/images/{digest}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status().as_u16(), 204);
        elapsed
    }

    /// Sorted latencies of requests for an image that is published.
    async fn already_present(&self, source: &str) -> Vec<Duration> {
        self.post(source).await;
        let mut present = Vec::with_capacity(PRESENT_REQUESTS);
        for _ in 0..PRESENT_REQUESTS {
            let started = Instant::now();
            let body = self.post(source).await;
            present.push(started.elapsed());
            assert_eq!(body["status"], "already_present");
        }
        present.sort();
        present
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn min(durations: Vec<Duration>) -> Duration {
    durations.into_iter().min().unwrap()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn remove(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}
