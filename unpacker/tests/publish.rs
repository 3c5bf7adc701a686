//! The publishers against real directories and the stand-in
//! `cvmfs_server` (tests/fixtures/cvmfs_server), which enforces the
//! transaction protocol and logs every call.
//!
//! The image content here is a small generated tree (or one that fails
//! half-way), so these tests exercise publishing alone; `serve.rs` runs
//! real images through the whole service.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gha_unpacker::image::Digest;
use gha_unpacker::publish::cvmfs::{CvmfsConfig, CvmfsPublisher};
use gha_unpacker::publish::dir::DirPublisher;
use gha_unpacker::publish::{Content, PublishError, PublishJob, PublishStatus, Publisher, TagName};
use gha_unpacker::unpack::{UnpackError, UnpackReport};
use tokio_util::sync::CancellationToken;

/// A tree of a few files; fails after writing some when `fail` is set;
/// blocks in `write_dir` until released when `gate` is set.
struct Tree {
    name: &'static str,
    fail: bool,
    gate: Option<Arc<Mutex<()>>>,
    calls: AtomicUsize,
}

impl Tree {
    fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            name,
            fail: false,
            gate: None,
            calls: AtomicUsize::new(0),
        })
    }

    fn failing(name: &'static str) -> Arc<Self> {
        Arc::new(Self {
            fail: true,
            ..Arc::into_inner(Self::new(name)).unwrap()
        })
    }

    fn gated(name: &'static str, gate: Arc<Mutex<()>>) -> Arc<Self> {
        Arc::new(Self {
            gate: Some(gate),
            ..Arc::into_inner(Self::new(name)).unwrap()
        })
    }

    fn failure(&self) -> UnpackError {
        UnpackError::DigestMismatch {
            what: format!("{} layer 1", self.name),
            expected: Digest::of(b"expected"),
            actual: Digest::of(b"actual"),
        }
    }
}

impl Content for Tree {
    fn write_dir(&self, dest: &Path) -> Result<UnpackReport, UnpackError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            drop(gate.lock().unwrap());
        }
        let io = |source| UnpackError::Io {
            what: dest.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dest.join("etc")).map_err(io)?;
        std::fs::write(dest.join("etc/name"), self.name).map_err(io)?;
        if self.fail {
            return Err(self.failure());
        }
        std::os::unix::fs::symlink("etc/name", dest.join("name")).map_err(io)?;
        Ok(UnpackReport {
            bytes_written: self.name.len() as u64,
            files_written: 2,
            ..Default::default()
        })
    }

    fn write_tar(&self, out: &mut dyn Write) -> Result<UnpackReport, UnpackError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let io = |source| UnpackError::Io {
            what: "tar".into(),
            source,
        };
        let mut builder = tar::Builder::new(out);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder
            .append_data(&mut header, "etc", std::io::empty())
            .map_err(io)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(self.name.len() as u64);
        builder
            .append_data(&mut header, "etc/name", self.name.as_bytes())
            .map_err(io)?;
        if self.fail {
            // Half a stream: the ingest must not publish it.
            return Err(self.failure());
        }
        builder.finish().map_err(io)?;
        Ok(UnpackReport {
            files_written: 1,
            ..Default::default()
        })
    }
}

fn digest(name: &str) -> Digest {
    Digest::of(name.as_bytes())
}

fn job(name: &'static str, content: Arc<Tree>) -> PublishJob {
    PublishJob {
        digest: digest(name),
        tag: Some(format!("registry.test/{name}:v1").parse().unwrap()),
        content,
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ---------------------------------------------------------------- dir

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

// ---------------------------------------------------------------- cvmfs

/// The stand-in, pointed at a temporary `/cvmfs` through `env`.
struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The command that runs the stand-in, failing `fail` if given.
    fn command(&self, fail: Option<&str>) -> Vec<String> {
        let script = gha_testkit::paths::repo_root().join("tests/fixtures/cvmfs_server");
        let mut command = vec![
            "env".to_string(),
            format!("CVMFS_STANDIN_ROOT={}", self.mount_root().display()),
        ];
        command.extend(fail.map(|f| format!("CVMFS_STANDIN_FAIL={f}")));
        command.push(script.display().to_string());
        command
    }

    fn mount_root(&self) -> PathBuf {
        self.dir.path().join("cvmfs")
    }

    fn config(&self) -> CvmfsConfig {
        CvmfsConfig {
            repository: "images.test".into(),
            server: self.command(None),
            mount_root: self.mount_root(),
            subdir: "ci".into(),
            lease_subdir: false,
            ingest: false,
            gc: true,
            nested_catalogs: true,
            max_batch: 8,
        }
    }

    /// The commands logged, without pids: `transaction images.test => 0`.
    fn calls(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.mount_root().join(".standin/calls.log"))
            .unwrap_or_default();
        log.lines()
            .map(|line| match line.split_once(' ') {
                Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest.to_owned(),
                _ => line.to_owned(),
            })
            .collect()
    }

    fn images(&self) -> Vec<String> {
        entries(&self.mount_root().join("images.test/ci/.images"))
    }
}

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
