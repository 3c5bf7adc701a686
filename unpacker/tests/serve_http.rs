//! `serve`'s HTTP API end to end with real `oci:` layouts and the `dir`
//! publisher: publishing, renewal, listing, deletion, tokens, the single
//! flight, answers later, errors, restarts; and the binary itself.

mod service;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gha_testkit::eventually;
use serde_json::{Value, json};
use service::*;
use support::Corrupt;

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
        .arg("--local-source-dirs")
        .arg(dir.path())
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

#[tokio::test]
async fn local_sources_outside_the_allowed_directories_are_forbidden() {
    let allowed = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let inside = layout(allowed.path(), "inside", 1024, Corrupt::Nothing);
    let elsewhere = layout(outside.path(), "elsewhere", 1024, Corrupt::Nothing);
    // A symlink inside that leads outside does not get through either.
    let link = allowed.path().join("link");
    std::os::unix::fs::symlink(outside.path().join("elsewhere"), &link).unwrap();
    let service = Setup::dir(allowed.path()).start().await;
    assert_eq!(service.post(json!({"source": inside})).await.0, 200);
    // Outside, a path that does not exist answers as one that does: no
    // probing of this host's filesystem.
    let missing_outside = outside.path().join("no-such-layout");
    let dangling = allowed.path().join("dangling");
    std::os::unix::fs::symlink(outside.path().join("nothing-here"), &dangling).unwrap();
    for source in [
        elsewhere,
        format!("oci:{}:v1", link.display()),
        format!("oci:{}:v1", missing_outside.display()),
        "oci:/nonexistent/layout:v1".to_owned(),
        format!("oci:{}:v1", link.join("no-such-dir").display()),
        format!("oci:{}:v1", dangling.display()),
    ] {
        let (status, body) = service.post(json!({"source": source})).await;
        assert_eq!(
            (status, body["kind"].as_str()),
            (403, Some("forbidden")),
            "{source}: {body}"
        );
    }
    // Inside, a missing layout is simply not found, also when `..` after
    // a missing directory would climb out: that path cannot exist.
    for missing_inside in [
        format!("oci:{}:v1", allowed.path().join("no-such-layout").display()),
        format!(
            "oci-archive:{}",
            allowed.path().join("x/../../no-such.tar").display()
        ),
    ] {
        let (status, body) = service.post(json!({"source": missing_inside})).await;
        assert_eq!(
            (status, body["kind"].as_str()),
            (404, Some("not_found")),
            "{missing_inside}: {body}"
        );
    }
    service.stop().await;

    let mut docker_only = Setup::dir(allowed.path());
    docker_only.local_source_dirs.clear();
    let service = docker_only.start().await;
    let (status, body) = service.post(json!({"source": inside})).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_sources_are_pulled_through_the_service_with_its_registry_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let source = layout(dir.path(), "pulled", 1024, Corrupt::Nothing);
    let layout_dir = dir.path().join("pulled");
    let registry = tokio::task::spawn_blocking(move || {
        let registry =
            gha_testkit::registry::Registry::start_with_token_auth("ci-bot", "s3cret-pass")
                .unwrap();
        registry
            .push(&layout_dir, "v1", "ci/pulled", "v1", false)
            .unwrap();
        registry
    })
    .await
    .unwrap();
    assert!(source.starts_with("oci:"));
    let mut setup = Setup::dir(dir.path());
    setup.opener =
        gha_unpacker::service::opener_with(gha_unpacker::source::registry::RegistryOptions {
            auth_file: registry.auth_file().map(Path::to_path_buf),
            ..Default::default()
        });
    let service = setup.start().await;
    let reference = format!("docker://{}/ci/pulled:v1", registry.host());
    let (status, body) = service.post(json!({"source": reference})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "published");
    assert_eq!(text(&body["path"], "etc/os-release"), "NAME=pulled\n");
    assert!(registry.tokens_issued() >= 1);
}
