//! The other outputs: the flattened tree as one tar stream (for
//! `cvmfs_server ingest`) extracts to the same tree as the directory
//! output, and `--apptainer` adds what Apptainer needs.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use gha_unpacker::source::{SourceRef, open_source};
use gha_unpacker::unpack::{UnpackOptions, resolve, unpack_to_dir, unpack_to_tar};
use support::snapshot::snapshot;
use support::{Corrupt, Layer, write_layout, write_layout_with_config};

fn layers() -> Vec<Layer> {
    vec![
        Layer::new()
            .dir("bin")
            .file_full("bin/tool", b"#!/bin/sh\n", 0o700, 0, 0)
            .hardlink("bin/alias", "bin/tool")
            .dir_mode("private", 0o700)
            .file_full("private/key", b"k", 0o600, 1000, 1000)
            .dir("d")
            .file("d/old", "o")
            .fifo("pipe")
            .file_xattrs("bin/ping", "elf", &[("user.origin", b"layer 0")]),
        Layer::new()
            .opaque("d")
            .file("d/new", "n")
            .symlink("link", "bin/tool")
            .file(&format!("{}/x", "l".repeat(150)), "long"),
    ]
}

fn source(layout: &Path) -> SourceRef {
    format!("oci:{}:t", layout.display()).parse().unwrap()
}

#[test]
fn the_tar_stream_extracts_to_the_directory_tree() {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout(&work.path().join("layout"), "t", layers(), Corrupt::Nothing);
    let opened = open_source(&source(&layout)).unwrap();
    let options = UnpackOptions::default();
    let image = resolve(opened.as_ref(), &options).unwrap();
    let dir = work.path().join("dir");
    unpack_to_dir(opened.as_ref(), &image, &dir, &options).unwrap();
    let mut stream = Vec::new();
    unpack_to_tar(opened.as_ref(), &image, &mut stream, &options).unwrap();
    let tar_file = work.path().join("flat.tar");
    std::fs::write(&tar_file, &stream).unwrap();
    let extracted = work.path().join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    let status = Command::new("tar")
        .args([
            "--same-owner",
            "--same-permissions",
            "--xattrs",
            "--xattrs-include=*",
            "-xf",
        ])
        .arg(&tar_file)
        .arg("-C")
        .arg(&extracted)
        .status()
        .unwrap();
    assert!(status.success());
    let (mut want, mut got) = (snapshot(&dir), snapshot(&extracted));
    want.remove(".");
    got.remove(".");
    assert_eq!(got, want);
}

#[test]
fn apptainer_mode_opens_permissions_and_adds_metadata() {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout_with_config(
        &work.path().join("layout"),
        "t",
        layers(),
        Corrupt::Nothing,
        serde_json::json!({
            "Env": ["PATH=/usr/bin:/bin", "GREETING=it's here"],
            "Entrypoint": ["/bin/tool"],
            "Cmd": ["--serve"],
        }),
    );
    let opened = open_source(&source(&layout)).unwrap();
    let options = UnpackOptions {
        apptainer: true,
        ..UnpackOptions::default()
    };
    let image = resolve(opened.as_ref(), &options).unwrap();
    let root = work.path().join("rootfs");
    unpack_to_dir(opened.as_ref(), &image, &root, &options).unwrap();
    let mode = |path: &str| {
        std::fs::symlink_metadata(root.join(path))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("bin/tool"), 0o755);
    assert_eq!(mode("private"), 0o755);
    assert_eq!(mode("private/key"), 0o644);
    assert_eq!(mode("tmp"), 0o1777);
    for mount in ["proc", "sys", "dev", "cvmfs", "home"] {
        assert!(root.join(mount).is_dir(), "{mount}");
    }
    let env =
        std::fs::read_to_string(root.join(".singularity.d/env/10-docker2singularity.sh")).unwrap();
    assert!(env.contains("export PATH='/usr/bin:/bin'"), "{env}");
    assert!(env.contains(r"export GREETING='it'\''s here'"), "{env}");
    let runscript = std::fs::read_to_string(root.join(".singularity.d/runscript")).unwrap();
    assert!(
        runscript.contains("exec '/bin/tool' '--serve'"),
        "{runscript}"
    );
    let output = Command::new("sh")
        .arg(root.join(".singularity.d/env/10-docker2singularity.sh"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the env script is valid sh: {output:?}"
    );

    let mut stream = Vec::new();
    unpack_to_tar(opened.as_ref(), &image, &mut stream, &options).unwrap();
    let names: Vec<String> = tar::Archive::new(&stream[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == ".singularity.d/runscript"),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "proc/"), "{names:?}");
}

#[test]
fn a_cancelled_unpack_stops_and_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout(&work.path().join("layout"), "t", layers(), Corrupt::Nothing);
    let opened = open_source(&source(&layout)).unwrap();
    let options = UnpackOptions::default();
    let image = resolve(opened.as_ref(), &options).unwrap();
    options.cancel.cancel();
    let dest = work.path().join("rootfs");
    let error = unpack_to_dir(opened.as_ref(), &image, &dest, &options).unwrap_err();
    assert!(
        matches!(error, gha_unpacker::unpack::UnpackError::Cancelled),
        "{error}"
    );
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["layout"], "no destination, staging or spool left");
}
