//! `gha-scheduler run --github-ca-file`: the CA a GHES behind an internal
//! CA needs is read and checked before any I/O; a file that is missing or
//! holds no certificate is a configuration error naming it.

use gha_testkit::cli::assert_config_error;
use gha_testkit::paths::repo_root;

const BIN: &str = env!("CARGO_BIN_EXE_gha-scheduler");

#[test]
fn an_unreadable_or_non_pem_ca_file_is_a_config_error() {
    let policy = repo_root().join("scheduler/examples/policy.toml");
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "ghp_test\n").unwrap();
    let not_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
    for (ca, says) in [
        ("/nonexistent/ca.pem", "/nonexistent/ca.pem"),
        (not_pem.path().to_str().unwrap(), "no PEM certificate"),
    ] {
        assert_config_error(
            BIN,
            &[
                "run",
                "--policy",
                policy.to_str().unwrap(),
                "--github-token-file",
                token.path().to_str().unwrap(),
                "--github-ca-file",
                ca,
            ],
            says,
        );
    }
}
