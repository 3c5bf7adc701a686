//! Signals reach the program as a cancelled token; a program that ignores
//! it is cut off after the grace period. Own test binary: it signals itself.

use std::time::Duration;

use gha_runtime::shutdown::{Forced, Shutdown};

fn signal_self(signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_cancels_the_token_and_a_stuck_program_is_forced_after_grace() {
    let shutdown = Shutdown::on_signals(Duration::from_millis(200)).unwrap();
    let token = shutdown.token();
    assert!(!token.is_cancelled());

    let program = async {
        signal_self("-TERM");
        token.cancelled().await;
        // Ignores the request to stop: shutdown must not wait forever.
        std::future::pending::<anyhow::Result<()>>().await
    };
    let err = tokio::time::timeout(Duration::from_secs(10), shutdown.run(program))
        .await
        .expect("forced within the grace period")
        .unwrap_err();
    assert!(err.downcast_ref::<Forced>().is_some(), "{err:#}");
    assert!(err.to_string().contains("grace period"), "{err}");
}
