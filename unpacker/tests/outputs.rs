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

/// A base layer as distributions ship it: passwd and group readable,
/// shadow files and an SSH host key not, and a hard link to the shadow
/// file elsewhere; an upper layer changes the shadow file.
fn credential_layers() -> Vec<Layer> {
    const HASH: &[u8] = b"root:$y$j9T$secretsalt$secrethash:19000:0:99999:7:::\n";
    vec![
        Layer::new()
            .dir("etc")
            .file_full(
                "etc/passwd",
                b"root:x:0:0:root:/root:/bin/sh\n",
                0o644,
                0,
                0,
            )
            .file_full("etc/group", b"root:x:0:\nshadow:x:42:\n", 0o644, 0, 0)
            .file_full("etc/shadow", HASH, 0o640, 0, 42)
            .file_full("etc/gshadow", b"root:*::\nadm:$6$secret::\n", 0o640, 0, 42)
            .dir("etc/ssh")
            .file_full(
                "etc/ssh/ssh_host_ed25519_key",
                b"-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n",
                0o600,
                0,
                0,
            )
            .file_full(
                "etc/ssh/ssh_host_ed25519_key.pub",
                b"ssh-ed25519 AAAA public\n",
                0o644,
                0,
                0,
            )
            .dir("var")
            .dir("var/backups")
            .hardlink("var/backups/shadow.copy", "etc/shadow"),
        Layer::new().file_full("etc/shadow-", HASH, 0o600, 0, 42),
    ]
}

#[test]
fn apptainer_mode_empties_the_images_credential_files_and_says_so() {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout(
        &work.path().join("layout"),
        "t",
        credential_layers(),
        Corrupt::Nothing,
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
    // What Apptainer reads stays readable.
    assert_eq!(mode("etc/passwd"), 0o644);
    assert_eq!(mode("etc/group"), 0o644);
    assert_eq!(mode("etc/ssh/ssh_host_ed25519_key.pub"), 0o644);
    assert!(
        std::fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .starts_with("root:x:0:0")
    );
    // Credential files are there, empty, with the image's modes, not a+r.
    for (path, want) in [
        ("etc/shadow", 0o640),
        ("etc/shadow-", 0o600),
        ("etc/gshadow", 0o640),
        ("etc/ssh/ssh_host_ed25519_key", 0o600),
        ("var/backups/shadow.copy", 0o640),
    ] {
        assert_eq!(std::fs::read(root.join(path)).unwrap(), b"", "{path}");
        assert_eq!(mode(path), want, "{path}");
    }
    let tree_text = |dir: &Path| {
        let output = Command::new("grep")
            .args(["-r", "secret"])
            .arg(dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(tree_text(&root), "", "no secret left in the tree");

    // The tar stream (cvmfs_server ingest) carries no secret either.
    let mut stream = Vec::new();
    unpack_to_tar(opened.as_ref(), &image, &mut stream, &options).unwrap();
    assert!(
        !stream.windows(6).any(|w| w == b"secret"),
        "a secret in the tar stream"
    );
    let mut archive = tar::Archive::new(&stream[..]);
    let shadow = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("etc/shadow"))
        .expect("etc/shadow in the stream");
    assert_eq!(shadow.header().size().unwrap(), 0);
    assert_eq!(shadow.header().mode().unwrap() & 0o7777, 0o640);

    // Without --apptainer the tree is exactly what the layers say.
    let exact = work.path().join("exact");
    unpack_to_dir(opened.as_ref(), &image, &exact, &UnpackOptions::default()).unwrap();
    assert!(tree_text(&exact).contains("etc/shadow"));

    // The command line says what it emptied.
    let output = Command::new(env!("CARGO_BIN_EXE_gha-unpacker"))
        .args([
            "unpack",
            &format!("oci:{}:t", layout.display()),
            "--apptainer",
            "--dest",
        ])
        .arg(work.path().join("cli"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for path in [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/ssh/ssh_host_ed25519_key",
    ] {
        assert!(
            stderr.lines().any(|l| l.contains("WARN")
                && l.contains("emptied a credential file")
                && l.ends_with(&format!("path={path}"))),
            "{path}: {stderr}"
        );
    }
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
