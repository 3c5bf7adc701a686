//! `gha-poller` answers for itself and refuses what it does not do yet.

use gha_testkit::cli::{assert_config_error, assert_help_and_version, assert_unimplemented};

const BIN: &str = env!("CARGO_BIN_EXE_gha-poller");

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-poller", &["run", "poll-once"]);
}

#[test]
fn unimplemented_subcommands_exit_non_zero_saying_so() {
    assert_unimplemented(BIN, &["run"]);
    assert_unimplemented(BIN, &["poll-once", "--json"]);
}

#[test]
fn a_bad_nats_url_is_a_config_error() {
    assert_config_error(BIN, &["run", "--nats-url", "nats://x:port"], "--nats-url");
}
