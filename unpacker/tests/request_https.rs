//! `gha-unpacker request --url https://...`: `serve` behind a TLS
//! terminator with a CA made for the test; `--ca-file` (or
//! `GHA_UNPACKER_CA_FILE`) with that CA gets the path, no CA or the wrong
//! CA is refused at the handshake.

mod service;
mod support;
mod tls_support;

use std::net::SocketAddr;

use service::*;
use support::Corrupt;
use tls_support::{Terminator, TestCa};

const BIN: &str = env!("CARGO_BIN_EXE_gha-unpacker");

async fn request(envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(BIN)
        .arg("request")
        .args(args)
        .env_remove("GHA_UNPACKER_CA_FILE")
        .envs(envs.iter().copied())
        .output()
        .await
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_over_https_trusts_its_ca_file_and_refuses_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "overTls", 1024, Corrupt::Nothing);
    let service = Setup::dir(dir.path()).start().await;
    let backend: SocketAddr = service.url.trim_start_matches("http://").parse().unwrap();
    let ca = TestCa::new("slurm-actions test CA");
    let terminator = Terminator::start(&ca, backend).await;
    let ca_file = ca.write_pem(dir.path(), "ca.pem");
    let wrong_ca = TestCa::new("someone else's CA").write_pem(dir.path(), "wrong.pem");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token = token_file.to_str().unwrap();
    let url = terminator.url.as_str();
    let common = ["--url", url, "--token-file", token, "--wait"];

    let (code, stdout, stderr) = request(
        &[],
        &[
            &[source.as_str(), "--ca-file", ca_file.to_str().unwrap()],
            &common[..],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    let path = stdout.trim_end();
    assert!(
        std::path::Path::new(path).join("etc/added").is_file(),
        "{stdout}"
    );

    // The same through the environment.
    let (code, again, stderr) = request(
        &[("GHA_UNPACKER_CA_FILE", ca_file.to_str().unwrap())],
        &[&[source.as_str()], &common[..]].concat(),
    )
    .await;
    assert_eq!((code, again.trim_end()), (Some(0), path), "{stderr}");

    // The platform's roots alone do not know the test CA; nor does
    // another CA.
    for extra in [vec![], vec!["--ca-file", wrong_ca.to_str().unwrap()]] {
        let (code, stdout, stderr) =
            request(&[], &[&[source.as_str()], &extra[..], &common[..]].concat()).await;
        assert_eq!(code, Some(1), "{extra:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.contains(&format!("POST {url}/images")), "{stderr}");
        assert!(
            stderr.to_lowercase().contains("certificate") || stderr.contains("UnknownIssuer"),
            "{extra:?}: the error says why: {stderr}"
        );
    }

    // A file without a certificate is a configuration error (exit 64).
    let (code, _, stderr) = request(
        &[],
        &[&[source.as_str(), "--ca-file", token], &common[..]].concat(),
    )
    .await;
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("--ca-file"), "{stderr}");
    service.stop().await;
}
