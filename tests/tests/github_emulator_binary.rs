//! The `github-emulator` binary: listens, prints its URL and token, and its
//! control API sets up the world the REST API then shows.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_the_control_and_rest_apis() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_github-emulator"))
        .args(["--listen", "127.0.0.1:0", "--repos", "acme/widgets"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _running = Running(child);
    let mut next = |prefix: &str| {
        lines
            .next()
            .unwrap()
            .unwrap()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix}"))
            .to_string()
    };
    let url = next("GITHUB_API_URL=");
    let token = next("GITHUB_TOKEN=");
    let client = reqwest::Client::new();

    let created: Value = client
        .post(format!("{url}/_emulator/repos/acme/widgets/fan-out"))
        .json(&json!({"name": "matrix", "count": 3, "labels": ["slurm"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = created["run_id"].as_u64().unwrap();

    let jobs: Value = client
        .get(format!(
            "{url}/repos/acme/widgets/actions/runs/{run_id}/jobs"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["total_count"], 3);

    let requests: Value = client
        .get(format!("{url}/_emulator/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(requests[0]["method"], "GET");
    assert_eq!(requests[0]["status"], 200);
    assert_eq!(requests[0]["token"], token.as_str());
}

#[tokio::test]
async fn with_https_the_binary_prints_the_ca_its_certificate_verifies_against() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;

    let mut child = Command::new(env!("CARGO_BIN_EXE_github-emulator"))
        .args(["--listen", "127.0.0.1:0", "--https"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _running = Running(child);
    let mut next = |prefix: &str| {
        let line = lines.next().unwrap().unwrap();
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix}: {line}"))
            .to_string()
    };
    let url = next("GITHUB_API_URL=");
    next("GITHUB_TOKEN=");
    let ca_file = next("GITHUB_CA_FILE=");
    let addr = url
        .strip_prefix("https://")
        .expect("an https URL")
        .to_string();

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await;
    assert!(tls.is_ok(), "the handshake verifies: {:?}", tls.err());
}
