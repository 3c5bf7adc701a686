//! `gha-unpacker` answers for itself, unpacks local images from the command
//! line, and refuses bad configuration before any I/O.

mod support;

use gha_testkit::cli::{assert_config_error, assert_help_and_version, run};
use support::{Corrupt, Layer, write_layout};

const BIN: &str = env!("CARGO_BIN_EXE_gha-unpacker");

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-unpacker", &["unpack", "serve", "request"]);
}

#[test]
fn bad_sources_and_platforms_are_config_errors() {
    assert_config_error(
        BIN,
        &["unpack", "ftp://x/y", "--dest", "/tmp/x"],
        "docker://",
    );
    assert_config_error(
        BIN,
        &[
            "unpack",
            "oci:/x",
            "--dest",
            "/tmp/x",
            "--platform",
            "amd64",
        ],
        "os/arch",
    );
}

#[test]
fn unpack_writes_the_tree_and_summarises() {
    let work = tempfile::tempdir().unwrap();
    let layout = write_layout(
        &work.path().join("layout"),
        "v1",
        vec![Layer::new().dir("etc").file("etc/os-release", "ID=test\n")],
        Corrupt::Nothing,
    );
    let dest = work.path().join("rootfs");
    let source = format!("oci:{}:v1", layout.display());
    let output = run(BIN, &["unpack", &source, "--dest", dest.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("unpacked oci:") && stderr.contains("1 files"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/os-release")).unwrap(),
        "ID=test\n"
    );

    let again = run(BIN, &["unpack", &source, "--dest", dest.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn an_unreachable_registry_fails_naming_the_image() {
    let output = run(
        BIN,
        &[
            "unpack",
            "docker://127.0.0.1:1/x:y",
            "--dest",
            "/tmp/never-made",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("docker://127.0.0.1:1/x:y"), "{stderr}");
    assert!(
        stderr.contains("attempts"),
        "retried, then gave up: {stderr}"
    );
    assert!(!std::path::Path::new("/tmp/never-made").exists());
}

#[test]
fn serve_refuses_bad_configuration_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "s3cret\n").unwrap();
    let tokens = tokens.to_str().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--no-nats", "--state-dir", state];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    for (extra, mentions) in [
        (
            vec!["--token-file", "/nonexistent/t", "--publish", "dir:/tmp/x"],
            "--token-file",
        ),
        (
            vec![
                "--token-file",
                empty.to_str().unwrap(),
                "--publish",
                "dir:/tmp/x",
            ],
            "no token",
        ),
        (
            vec!["--token-file", tokens, "--publish", "s3:bucket"],
            "--publish",
        ),
        (
            vec!["--token-file", tokens, "--publish", "dir:relative"],
            "absolute",
        ),
        (
            vec!["--token-file", tokens, "--publish", "cvmfs:../etc"],
            "repository name",
        ),
        (
            vec![
                "--token-file",
                tokens,
                "--publish",
                "dir:/tmp/x",
                "--platform",
                "linux",
            ],
            "--platform",
        ),
        (
            vec![
                "--token-file",
                tokens,
                "--publish",
                "dir:/tmp/x",
                "--default-ttl",
                "0",
            ],
            "--default-ttl",
        ),
        (
            vec![
                "--token-file",
                tokens,
                "--publish",
                "dir:/tmp/x",
                "--local-source-dirs",
                "relative/dir",
            ],
            "absolute",
        ),
    ] {
        let args = serve(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_config_error(BIN, &args, mentions);
    }
    assert!(
        !std::path::Path::new(state).exists(),
        "nothing is created before the configuration is valid"
    );
}

#[test]
fn request_refuses_bad_configuration() {
    assert_config_error(BIN, &["request", "ftp://x/y"], "docker://");
    assert_config_error(
        BIN,
        &["request", "oci:/x", "--url", "http://127.0.0.1:1"],
        "--token-file",
    );
    assert_config_error(
        BIN,
        &[
            "request",
            "oci:/x",
            "--url",
            "ftp://h",
            "--token-file",
            "/x",
        ],
        "--url",
    );
}

/// Without root, files belong to the caller, and read-only directories of
/// the image still get their contents (their modes are applied last).
#[test]
fn unpack_without_root_keeps_modes_and_takes_ownership() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let work = tempfile::tempdir().unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let layout = write_layout(
        &work.path().join("layout"),
        "v1",
        vec![
            Layer::new()
                .dir_mode("ro", 0o555)
                .file("ro/inside", "r")
                .file_full("owned", b"o", 0o640, 1000, 1000),
        ],
        Corrupt::Nothing,
    );
    let dest = work.path().join("rootfs");
    let source = format!("oci:{}:v1", layout.display());
    let mut args = vec!["unpack", &source, "--dest", dest.to_str().unwrap()];
    let output = if rustix::process::geteuid().is_root() {
        // Run as `nobody`, via util-linux's setpriv.
        let mut command = vec!["--reuid=65534", "--regid=65534", "--clear-groups", BIN];
        command.append(&mut args);
        run("setpriv", &command)
    } else {
        run(BIN, &args)
    };
    assert!(output.status.success(), "{output:?}");
    let meta = |path: &str| std::fs::symlink_metadata(dest.join(path)).unwrap();
    assert_eq!(meta("ro").mode() & 0o7777, 0o555);
    assert_eq!(
        std::fs::read_to_string(dest.join("ro/inside")).unwrap(),
        "r"
    );
    assert_eq!(meta("owned").mode() & 0o7777, 0o640);
    let me = if rustix::process::geteuid().is_root() {
        65534
    } else {
        rustix::process::geteuid().as_raw()
    };
    assert_eq!(meta("owned").uid(), me);
    assert_eq!(meta("owned").mtime(), 1_600_000_000);
    // Clean up what `nobody` made read-only.
    std::fs::set_permissions(dest.join("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
}
