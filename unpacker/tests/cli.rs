//! `gha-unpacker` answers for itself, unpacks local images from the command
//! line, and refuses what it does not do yet.

mod support;

use gha_testkit::cli::{assert_config_error, assert_help_and_version, assert_unimplemented, run};
use support::{Corrupt, Layer, write_layout};

const BIN: &str = env!("CARGO_BIN_EXE_gha-unpacker");

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-unpacker", &["unpack", "serve"]);
}

#[test]
fn unimplemented_subcommands_exit_non_zero_saying_so() {
    assert_unimplemented(BIN, &["serve"]);
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
