//! The `gha-unpacker serve` binary's `/metrics` is what `docs/metrics.md`
//! says, both ways, and its metrics count a real unpack of an `oci:`
//! layout published into a directory.

mod service;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gha_testkit::metrics_doc::{assert_documented, free_loopback_addr, sample_value, scrape};
use gha_testkit::{NatsServer, eventually};
use serde_json::json;
use service::{TOKEN, layout};
use support::Corrupt;

/// The unpacker process, killed when the test ends, failing or not.
struct Unpacker(Child);

impl Drop for Unpacker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn value(text: &str, series: &str) -> f64 {
    sample_value(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_are_documented_and_count_an_unpack() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources");
    let source = layout(&sources, "alpha", 4096, Corrupt::Nothing);
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    let (api, admin) = (free_loopback_addr(), free_loopback_addr());
    let _unpacker = Unpacker(
        Command::new(env!("CARGO_BIN_EXE_gha-unpacker"))
            .arg("serve")
            .args(["--listen", &api.to_string()])
            .arg("--token-file")
            .arg(&token)
            .arg(format!(
                "--publish=dir:{}",
                dir.path().join("images").display()
            ))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--local-source-dirs")
            .arg(&sources)
            .args(["--nats-url", &nats.url()])
            .args(["--admin-listen", &admin.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gha-unpacker starts"),
    );

    let text = scrape(admin, Duration::from_secs(30)).await;
    assert_documented("gha-unpacker", &text);
    assert_eq!(
        value(&text, "gha_unpacker_unpack_duration_seconds_count"),
        0.0
    );

    let response = reqwest::Client::new()
        .post(format!("http://{api}/images"))
        .bearer_auth(TOKEN)
        .json(&json!({ "source": source }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "{:?}",
        response.text().await
    );

    let text = eventually(
        "the unpack and NATS on /metrics",
        Duration::from_secs(30),
        || async {
            let text = scrape(admin, Duration::from_secs(5)).await;
            let connected = sample_value(&text, "gha_unpacker_nats_connected")? == 1.0;
            let published = sample_value(&text, "gha_unpacker_published_images")? == 1.0;
            (connected && published).then_some(text)
        },
    )
    .await
    .expect("the unpacker reports its work");
    assert_eq!(
        value(&text, "gha_unpacker_requests_total{outcome=\"published\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "gha_unpacker_unpacks_total{outcome=\"published\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "gha_unpacker_unpack_duration_seconds_count"),
        1.0
    );
    assert!(
        value(&text, "gha_unpacker_written_files_total") >= 5.0,
        "{text}"
    );
    assert_documented("gha-unpacker", &text);
}
