//! `gha-runner-launcher` answers for itself and refuses what it does not do
//! yet.

use gha_testkit::cli::{assert_help_and_version, assert_unimplemented};

const BIN: &str = env!("CARGO_BIN_EXE_gha-runner-launcher");

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-runner-launcher", &["run"]);
}

#[test]
fn unimplemented_subcommands_exit_non_zero_saying_so() {
    assert_unimplemented(BIN, &["run"]);
}
