//! `gha-unpacker` answers for itself and refuses what it does not do yet.

use gha_testkit::cli::{assert_config_error, assert_help_and_version, assert_unimplemented};

const BIN: &str = env!("CARGO_BIN_EXE_gha-unpacker");

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-unpacker", &["unpack", "serve", "request"]);
}

#[test]
fn unimplemented_subcommands_exit_non_zero_saying_so() {
    assert_unimplemented(
        BIN,
        &["unpack", "docker://127.0.0.1:1/x:y", "--dest", "/tmp/x"],
    );
}

#[test]
fn an_unknown_transport_is_a_config_error() {
    assert_config_error(
        BIN,
        &["unpack", "ftp://x/y", "--dest", "/tmp/x"],
        "docker://",
    );
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
