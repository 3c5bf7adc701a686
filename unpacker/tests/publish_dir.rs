//! The `dir` publisher on a real directory: atomic, idempotent, tagged,
//! and clean after failures and crashes.

mod publishing;

use std::sync::atomic::Ordering;

use gha_unpacker::publish::dir::DirPublisher;
use gha_unpacker::publish::{PublishError, PublishJob, PublishStatus, Publisher, TagName};
use gha_unpacker::unpack::UnpackError;
use publishing::{Tree, digest, entries, job};
use tokio_util::sync::CancellationToken;

#[test]
fn dir_publish_is_atomic_idempotent_and_tagged() {
    let root = tempfile::tempdir().unwrap();
    let publisher = DirPublisher::open(root.path(), CancellationToken::new()).unwrap();
    let tree = Tree::new("alpha");
    let published = publisher.publish(job("alpha", tree.clone())).unwrap();
    assert_eq!(published.status, PublishStatus::Published);
    assert_eq!(
        published.path,
        root.path().join(".images").join(digest("alpha").hex())
    );
    assert_eq!(
        std::fs::read_to_string(published.path.join("etc/name")).unwrap(),
        "alpha"
    );
    let tag_path = published.tag_path.unwrap();
    assert_eq!(tag_path, root.path().join("tags/registry.test/alpha:v1"));
    assert_eq!(
        std::fs::read_to_string(tag_path.join("etc/name")).unwrap(),
        "alpha",
        "the tag link resolves to the image"
    );
    assert!(std::fs::read_link(&tag_path).unwrap().is_relative());

    let again = publisher.publish(job("alpha", tree.clone())).unwrap();
    assert_eq!(again.status, PublishStatus::AlreadyPresent);
    assert_eq!(tree.calls.load(Ordering::SeqCst), 1, "unpacked once");
    assert_eq!(
        entries(&root.path().join(".images")),
        vec![digest("alpha").hex().to_string()]
    );
}

#[test]
fn dir_a_failing_unpack_leaves_nothing() {
    let root = tempfile::tempdir().unwrap();
    let publisher = DirPublisher::open(root.path(), CancellationToken::new()).unwrap();
    let err = publisher
        .publish(job("broken", Tree::failing("broken")))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Unpack(UnpackError::DigestMismatch { .. })
        ),
        "{err}"
    );
    assert!(
        entries(&root.path().join(".images")).is_empty(),
        "no image, no temp dir"
    );
    assert!(!root.path().join("tags/registry.test/broken:v1").exists());
    assert!(!publisher.contains(&digest("broken")));
}

#[test]
fn dir_removal_takes_the_image_and_its_tag_links_only() {
    let root = tempfile::tempdir().unwrap();
    let publisher = DirPublisher::open(root.path(), CancellationToken::new()).unwrap();
    publisher.publish(job("one", Tree::new("one"))).unwrap();
    publisher.publish(job("two", Tree::new("two"))).unwrap();
    publisher.remove(&[digest("one")]).unwrap();
    assert!(!publisher.contains(&digest("one")));
    assert!(publisher.contains(&digest("two")));
    assert!(
        root.path()
            .join("tags/registry.test/one:v1")
            .symlink_metadata()
            .is_err()
    );
    assert!(root.path().join("tags/registry.test/two:v1").exists());
    assert_eq!(
        entries(&root.path().join(".images")),
        vec![digest("two").hex().to_string()]
    );
}

#[test]
fn dir_a_moved_tag_follows_the_latest_publish() {
    let root = tempfile::tempdir().unwrap();
    let publisher = DirPublisher::open(root.path(), CancellationToken::new()).unwrap();
    let tag: TagName = "registry.test/app:main".parse().unwrap();
    for name in ["build-1", "build-2"] {
        publisher
            .publish(PublishJob {
                digest: digest(name),
                tag: Some(tag.clone()),
                content: Tree::new(name),
            })
            .unwrap();
    }
    let link = publisher.tag_path(&tag);
    assert_eq!(
        std::fs::read_to_string(link.join("etc/name")).unwrap(),
        "build-2"
    );
    publisher.remove(&[digest("build-1")]).unwrap();
    assert!(
        link.exists(),
        "removing the old image keeps a tag that moved on"
    );
}

#[test]
fn dir_leftovers_of_a_crash_are_cleaned_at_open() {
    let root = tempfile::tempdir().unwrap();
    let leftover = root.path().join(".images/.tmp-abc-1-0");
    std::fs::create_dir_all(leftover.join("etc")).unwrap();
    DirPublisher::open(root.path(), CancellationToken::new()).unwrap();
    assert!(!leftover.exists());
}
