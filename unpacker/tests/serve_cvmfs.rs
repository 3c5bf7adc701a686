//! `serve` with the `cvmfs` publisher against the stand-in `cvmfs_server`:
//! TTL expiry and gc, ingest of a real image, and shutdown during an
//! unpack.

mod service;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gha_testkit::eventually;
use gha_unpacker::serve::PublisherConfig;
use serde_json::json;
use service::*;
use support::Corrupt;

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
