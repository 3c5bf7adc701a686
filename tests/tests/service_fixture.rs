//! A workspace binary as a restartable process: the github-emulator binary
//! stands in for a service (it prints where it listens, then serves).

use std::time::Duration;

use gha_testkit::eventually_blocking;
use gha_testkit::service::{Service, bin};

#[test]
fn a_service_is_started_killed_and_started_again_with_a_log_per_start() {
    let logs = tempfile::tempdir().unwrap();
    let mut service = Service::new(
        "emulator",
        &bin("github-emulator").expect("built by cargo test"),
        logs.path(),
    );
    service.args(["--listen", "127.0.0.1:0"]);
    service.start().unwrap();
    let first = service.pid().unwrap();
    eventually_blocking("it says where it listens", Duration::from_secs(20), || {
        service.logs().contains("GITHUB_API_URL=").then_some(())
    })
    .expect("listening");
    service.kill();
    assert!(service.pid().is_none());
    service.start().unwrap();
    assert_ne!(service.pid(), Some(first));
    eventually_blocking("the second start logs too", Duration::from_secs(20), || {
        (service.logs().matches("GITHUB_API_URL=").count() == 2).then_some(())
    })
    .expect("two starts logged");
    let status = service
        .stop(Duration::from_secs(10))
        .expect("it was running");
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert!(bin("no-such-binary").is_err());
}
