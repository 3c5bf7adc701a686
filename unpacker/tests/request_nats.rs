//! `gha-unpacker request` over NATS never waits without a bound: an
//! address nothing listens on, and a nats-server stopped mid-request, end
//! in an error that says NATS is unreachable and where; a server that
//! comes back in time still gets the request its result.

mod service;
mod support;

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gha_proto::Contract;
use gha_proto::subjects;
use gha_testkit::{NatsServer, eventually};
use gha_unpacker::source::ImageSource;
use service::*;
use support::Corrupt;
use tokio::io::AsyncBufReadExt;

const BIN: &str = env!("CARGO_BIN_EXE_gha-unpacker");

/// A loopback port nothing listens on (bound, then released).
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A running `request` whose stderr is collected as it comes.
struct Requesting {
    child: tokio::process::Child,
    stderr: Arc<Mutex<String>>,
}

impl Requesting {
    fn start(args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(BIN)
            .arg("request")
            .args(args)
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Self { child, stderr }
    }

    async fn said(&self, what: &str) {
        eventually(&format!("request to say {what:?}"), DEADLINE, || async {
            self.stderr.lock().unwrap().contains(what).then_some(())
        })
        .await
        .unwrap_or_else(|err| panic!("{err}; stderr:\n{}", self.stderr.lock().unwrap()));
    }

    /// Exit code and stdout, within `bound`.
    async fn finish(mut self, bound: Duration) -> (Option<i32>, String, String) {
        let mut stdout = self.child.stdout.take().unwrap();
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "request still running after {bound:?}; stderr:\n{}",
                    self.stderr.lock().unwrap()
                )
            })
            .unwrap();
        let mut out = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
            .await
            .unwrap();
        // The collector has read everything once the process is gone.
        eventually("stderr to close", DEADLINE, || async {
            Some(self.stderr.lock().unwrap().clone()).filter(|text| !text.is_empty())
        })
        .await
        .unwrap();
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code(), out, stderr)
    }
}

#[tokio::test]
async fn an_address_nothing_listens_on_is_named_within_the_timeout() {
    let url = format!("nats://127.0.0.1:{}", unused_port());
    let started = Instant::now();
    let request = Requesting::start(&["oci:/x:v1", "--nats-url", &url, "--timeout", "3"]);
    let (code, stdout, stderr) = request.finish(Duration::from_secs(20)).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(&format!("NATS at {url} is unreachable")),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(!stderr.contains('\u{1b}'), "colour in a pipe: {stderr:?}");
}

#[tokio::test]
async fn a_nats_server_stopped_mid_request_is_named_and_the_request_gives_up() {
    let mut nats = NatsServer::start().unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    Contract::new(client.clone())
        .ensure_topology()
        .await
        .unwrap();
    // Sees the request as it reaches the stream: no service answers it.
    let mut requests = client.subscribe(subjects::UNPACK_REQUESTS).await.unwrap();
    client.flush().await.unwrap();
    let url = nats.url();
    let request = Requesting::start(&[
        "oci:/x:v1",
        "--nats-url",
        &url,
        "--timeout",
        "120",
        "--connect-timeout",
        "2",
    ]);
    tokio::time::timeout(DEADLINE, requests.next())
        .await
        .expect("the request reaches NATS")
        .unwrap();
    request.said("waiting for the result").await;
    let stopped = Instant::now();
    nats.kill();
    let (code, stdout, stderr) = request.finish(Duration::from_secs(30)).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(&format!("NATS at {url} is unreachable")),
        "{stderr}"
    );
    assert!(stderr.contains("connection lost"), "{stderr}");
    // Within the connect timeout (2 s) and a margin, not the 120 s.
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "{:?}",
        stopped.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_back_in_time_still_answers_the_request() {
    let mut nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "restarted", 1 << 16, Corrupt::Nothing);
    let gate = Arc::new(Gate::default());
    let opened = Arc::new(AtomicBool::new(false));
    let mut setup = Setup::dir(dir.path());
    setup.nats = Some(nats.url());
    let (opener_gate, opener_opened) = (gate.clone(), opened.clone());
    setup.opener = Arc::new(move |reference| {
        opener_opened.store(true, Ordering::SeqCst);
        Ok(Box::new(Gated {
            inner: gha_unpacker::source::open_source(reference)?,
            gate: opener_gate.clone(),
        }) as Box<dyn ImageSource>)
    });
    let service = setup.start().await;
    // The service creates the stream; a request before that is refused.
    let health = format!("{}/healthz", service.admin);
    eventually("the service to consume requests", DEADLINE, || async {
        let response = service.http.get(&health).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await
    .unwrap();
    let request = Requesting::start(&[
        &source,
        "--nats-url",
        &nats.url(),
        "--timeout",
        "120",
        "--connect-timeout",
        "60",
    ]);
    eventually("the service to open the source", DEADLINE, || async {
        opened.load(Ordering::SeqCst).then_some(())
    })
    .await
    .unwrap_or_else(|err| panic!("{err}; stderr:\n{}", request.stderr.lock().unwrap()));
    // NATS goes away while the unpack is under way; the result is
    // published while the requester is not connected.
    nats.kill();
    request.said("lost the connection to NATS").await;
    gate.open();
    eventually("the image to be published", DEADLINE, || async {
        let (_, images) = service.get("/images").await;
        (images.as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await
    .unwrap();
    nats.restart().unwrap();
    let (code, stdout, stderr) = request.finish(Duration::from_secs(60)).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.trim_end().ends_with(".images/") || stdout.contains("/.images/"),
        "{stdout}"
    );
    assert!(
        std::path::Path::new(stdout.trim_end())
            .join("etc/added")
            .is_file()
    );
    service.stop().await;
}
