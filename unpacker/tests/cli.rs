//! `gha-unpacker` answers for itself and refuses what it does not do yet.

use gha_testkit::cli::{assert_config_error, assert_help_and_version, assert_unimplemented};

const BIN: &str = env!("CARGO_BIN_EXE_gha-unpacker");

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-unpacker", &["unpack", "serve"]);
}

#[test]
fn unimplemented_subcommands_exit_non_zero_saying_so() {
    assert_unimplemented(
        BIN,
        &["unpack", "docker://127.0.0.1:1/x:y", "--dest", "/tmp/x"],
    );
    assert_unimplemented(BIN, &["serve"]);
}

#[test]
fn an_unknown_transport_is_a_config_error() {
    assert_config_error(
        BIN,
        &["unpack", "ftp://x/y", "--dest", "/tmp/x"],
        "docker://",
    );
}
