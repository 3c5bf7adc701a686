//! `gha-scheduler` answers for itself and refuses what it does not do yet.

use gha_testkit::cli::{assert_config_error, assert_help_and_version, assert_unimplemented};

const BIN: &str = env!("CARGO_BIN_EXE_gha-scheduler");

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-scheduler", &["run", "explain"]);
}

#[test]
fn unimplemented_subcommands_exit_non_zero_saying_so() {
    assert_unimplemented(BIN, &["run"]);
    let policy = tempfile::NamedTempFile::new().unwrap();
    let policy = policy.path().to_str().unwrap();
    assert_unimplemented(BIN, &["explain", "--policy", policy, "--labels", "slurm"]);
}

#[test]
fn a_missing_policy_file_is_a_config_error() {
    assert_config_error(
        BIN,
        &[
            "explain",
            "--policy",
            "/nonexistent/policy.toml",
            "--labels",
            "slurm",
        ],
        "/nonexistent/policy.toml",
    );
}
