//! The `cvmfs` publisher against the stand-in `cvmfs_server`
//! (tests/fixtures/cvmfs_server), which enforces the transaction protocol
//! and logs every call: transactions, aborts, batching, ingest, removal.

mod publishing;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gha_unpacker::publish::cvmfs::CvmfsPublisher;
use gha_unpacker::publish::{PublishError, PublishStatus, Publisher};
use publishing::{StandIn, Tree, digest, job};
use tokio_util::sync::CancellationToken;

#[test]
fn cvmfs_publish_writes_inside_one_transaction() {
    let stand_in = StandIn::new();
    let publisher = CvmfsPublisher::new(stand_in.config(), CancellationToken::new());
    let published = publisher.publish(job("alpha", Tree::new("alpha"))).unwrap();
    assert_eq!(published.status, PublishStatus::Published);
    assert_eq!(
        published.path,
        stand_in
            .mount_root()
            .join("images.test/ci/.images")
            .join(digest("alpha").hex())
    );
    assert_eq!(
        std::fs::read_to_string(published.tag_path.unwrap().join("etc/name")).unwrap(),
        "alpha"
    );
    assert_eq!(
        stand_in.calls(),
        vec!["transaction images.test => 0", "publish images.test => 0"]
    );
    assert!(
        published.path.join(".cvmfscatalog").is_file(),
        "one nested catalog per image"
    );
    // Present now: no transaction at all.
    let again = publisher.publish(job("alpha", Tree::new("alpha"))).unwrap();
    assert_eq!(again.status, PublishStatus::AlreadyPresent);
    assert_eq!(stand_in.calls().len(), 2);
}

#[test]
fn cvmfs_a_failing_unpack_is_aborted_and_leaves_the_repository_as_it_was() {
    let stand_in = StandIn::new();
    let publisher = CvmfsPublisher::new(stand_in.config(), CancellationToken::new());
    publisher.publish(job("kept", Tree::new("kept"))).unwrap();
    let err = publisher
        .publish(job("broken", Tree::failing("broken")))
        .unwrap_err();
    assert!(matches!(err, PublishError::Unpack(_)), "{err}");
    assert_eq!(
        stand_in.calls()[2..],
        ["transaction images.test => 0", "abort -f images.test => 0"]
    );
    assert_eq!(stand_in.images(), vec![digest("kept").hex().to_string()]);
    // The protocol held: the next transaction finds nothing changed.
    publisher.publish(job("next", Tree::new("next"))).unwrap();
    assert!(
        !stand_in.calls().iter().any(|c| c.starts_with("VIOLATION")),
        "{:?}",
        stand_in.calls()
    );
}

#[test]
fn cvmfs_a_failed_publish_is_aborted() {
    let stand_in = StandIn::new();
    let mut config = stand_in.config();
    config.server = stand_in.command(Some("publish"));
    let publisher = CvmfsPublisher::new(config, CancellationToken::new());
    let err = publisher
        .publish(job("alpha", Tree::new("alpha")))
        .unwrap_err();
    assert!(matches!(err, PublishError::Batch(_)), "{err}");
    assert_eq!(
        stand_in.calls(),
        vec![
            "transaction images.test => 0",
            "publish images.test => 1",
            "abort -f images.test => 0"
        ]
    );
    assert!(stand_in.images().is_empty());
}

#[test]
fn cvmfs_concurrent_images_share_transactions_one_at_a_time() {
    let stand_in = StandIn::new();
    let publisher = Arc::new(CvmfsPublisher::new(
        stand_in.config(),
        CancellationToken::new(),
    ));
    // The first image holds its transaction open until the others queue.
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
    let first = {
        let (publisher, gate) = (publisher.clone(), gate.clone());
        std::thread::spawn(move || publisher.publish(job(NAMES[0], Tree::gated(NAMES[0], gate))))
    };
    gha_testkit::eventually_blocking("the first transaction", Duration::from_secs(20), || {
        stand_in.calls().first().cloned()
    })
    .unwrap();
    let others: Vec<_> = NAMES[1..]
        .iter()
        .map(|name| {
            let publisher = publisher.clone();
            std::thread::spawn(move || publisher.publish(job(name, Tree::new(name))))
        })
        .collect();
    gha_testkit::eventually_blocking("five queued images", Duration::from_secs(20), || {
        (publisher.queued() == 5).then_some(())
    })
    .unwrap();
    drop(held);
    for thread in std::iter::once(first).chain(others) {
        assert_eq!(
            thread.join().unwrap().unwrap().status,
            PublishStatus::Published
        );
    }
    assert_eq!(
        stand_in.calls(),
        vec![
            "transaction images.test => 0",
            "publish images.test => 0",
            "transaction images.test => 0",
            "publish images.test => 0",
        ],
        "one transaction for the first image, one for the five queued behind it"
    );
    let mut want: Vec<String> = NAMES.iter().map(|n| digest(n).hex().to_string()).collect();
    want.sort();
    assert_eq!(stand_in.images(), want);
}

#[test]
fn cvmfs_ingest_streams_each_image_and_links_tags() {
    let stand_in = StandIn::new();
    let mut config = stand_in.config();
    config.ingest = true;
    let publisher = CvmfsPublisher::new(config, CancellationToken::new());
    let published = publisher.publish(job("alpha", Tree::new("alpha"))).unwrap();
    assert_eq!(
        std::fs::read_to_string(published.path.join("etc/name")).unwrap(),
        "alpha"
    );
    assert_eq!(
        std::fs::read_to_string(published.tag_path.unwrap().join("etc/name")).unwrap(),
        "alpha"
    );
    assert!(
        published.path.join(".cvmfscatalog").is_file(),
        "one nested catalog per image"
    );
    let hex = digest("alpha").hex().to_string();
    assert_eq!(
        stand_in.calls(),
        vec![
            format!("ingest --tar_file - --base_dir ci/.images/{hex} --catalog images.test => 0"),
            "ingest --tar_file - --base_dir ci/tags images.test => 0".to_string(),
        ]
    );
}

#[test]
fn cvmfs_ingest_of_a_cut_stream_publishes_nothing() {
    let stand_in = StandIn::new();
    let mut config = stand_in.config();
    config.ingest = true;
    let publisher = CvmfsPublisher::new(config, CancellationToken::new());
    let err = publisher
        .publish(job("broken", Tree::failing("broken")))
        .unwrap_err();
    assert!(matches!(err, PublishError::Unpack(_)), "{err}");
    assert!(stand_in.images().is_empty(), "{:?}", stand_in.images());
    assert!(
        !stand_in
            .calls()
            .iter()
            .any(|c| c.starts_with("ingest") && c.ends_with("=> 0")),
        "{:?}",
        stand_in.calls()
    );
}

#[test]
fn cvmfs_removal_is_a_transaction_then_gc() {
    let stand_in = StandIn::new();
    let publisher = CvmfsPublisher::new(stand_in.config(), CancellationToken::new());
    publisher.publish(job("one", Tree::new("one"))).unwrap();
    publisher.publish(job("two", Tree::new("two"))).unwrap();
    publisher.remove(&[digest("one")]).unwrap();
    assert_eq!(stand_in.images(), vec![digest("two").hex().to_string()]);
    assert!(
        !stand_in
            .mount_root()
            .join("images.test/ci/tags/registry.test/one:v1")
            .exists()
    );
    assert_eq!(
        stand_in.calls()[4..],
        [
            "transaction images.test => 0",
            "publish images.test => 0",
            "gc -f images.test => 0"
        ]
    );
    // Removing what is not there touches nothing.
    publisher.remove(&[digest("one")]).unwrap();
    assert_eq!(stand_in.calls().len(), 7);
}

#[test]
fn cvmfs_shutdown_publishes_nothing_new() {
    let stand_in = StandIn::new();
    let shutdown = CancellationToken::new();
    let publisher = CvmfsPublisher::new(stand_in.config(), shutdown.clone());
    shutdown.cancel();
    let err = publisher
        .publish(job("late", Tree::new("late")))
        .unwrap_err();
    assert!(matches!(err, PublishError::Cancelled), "{err}");
    assert!(stand_in.calls().is_empty());
}

#[test]
fn cvmfs_shutdown_during_a_transaction_aborts_it() {
    let stand_in = StandIn::new();
    let shutdown = CancellationToken::new();
    let publisher = Arc::new(CvmfsPublisher::new(stand_in.config(), shutdown.clone()));
    let gate = Arc::new(Mutex::new(()));
    let held = gate.lock().unwrap();
    let publishing = {
        let (publisher, gate) = (publisher.clone(), gate.clone());
        std::thread::spawn(move || publisher.publish(job("a", Tree::gated("a", gate))))
    };
    gha_testkit::eventually_blocking("the transaction", Duration::from_secs(20), || {
        stand_in.calls().first().cloned()
    })
    .unwrap();
    shutdown.cancel();
    drop(held);
    let err = publishing.join().unwrap().unwrap_err();
    assert!(matches!(err, PublishError::Cancelled), "{err}");
    assert_eq!(
        stand_in.calls(),
        vec!["transaction images.test => 0", "abort -f images.test => 0"]
    );
    assert!(stand_in.images().is_empty());
}

#[test]
fn the_stand_in_refuses_writes_outside_a_transaction_and_a_second_transaction() {
    let stand_in = StandIn::new();
    let server = stand_in.command(None);
    let run = |args: &[&str]| {
        std::process::Command::new(&server[0])
            .args(&server[1..])
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(run(&["transaction", "images.test"]), Some(0));
    assert_eq!(run(&["transaction", "images.test"]), Some(17));
    assert_eq!(run(&["publish", "images.test"]), Some(0));
    assert_eq!(
        run(&["publish", "images.test"]),
        Some(1),
        "publish needs a transaction"
    );
    std::fs::write(stand_in.mount_root().join("images.test/sneaky"), "x").unwrap();
    assert_eq!(run(&["transaction", "images.test"]), Some(1));
    assert!(stand_in.calls().iter().any(|c| c.starts_with("VIOLATION")));
}
