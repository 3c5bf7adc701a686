//! `gha-poller run` survives NATS going away at each step of its start and
//! later, and its `/healthz` tells the truth: NATS connectivity, GitHub
//! credentials, poll passes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use gha_poller::Cli;
use gha_poller::service::{PhaseHook, StartPhase};
use gha_proto::{Contract, JobEvent};
use gha_testkit::github::{GitHubEmulator, JobSpec, WorkflowSpec};
use gha_testkit::{NatsServer, eventually};
use tokio_util::sync::CancellationToken;

mod support;

const REPO: &str = "acme/widgets";

/// A loopback port free at the time of asking (the admin endpoint's).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(
    emulator: &GitHubEmulator,
    nats: &NatsServer,
    token: &std::path::Path,
    admin: Option<u16>,
) -> gha_poller::Config {
    let mut args = vec![
        "gha-poller".to_string(),
        "run".into(),
        "--github-api-url".into(),
        emulator.url(),
        "--github-ca-file".into(),
        emulator.ca().cert_file().display().to_string(),
        "--token-file".into(),
        token.display().to_string(),
        "--repos".into(),
        REPO.into(),
        "--nats-url".into(),
        nats.url(),
        "--poll-interval".into(),
        "1".into(),
        "--busy-poll-interval".into(),
        "1".into(),
    ];
    if let Some(port) = admin {
        args.extend(["--admin-listen".into(), format!("127.0.0.1:{port}")]);
    }
    Cli::try_parse_from(args).unwrap().validate().unwrap()
}

fn token_file(token: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), token).unwrap();
    file
}

#[tokio::test]
async fn nats_restarted_at_each_phase_of_the_start_does_not_kill_the_poller() {
    for broken in [
        StartPhase::Connect,
        StartPhase::EnsureTopology,
        StartPhase::Serve,
    ] {
        let nats = Arc::new(Mutex::new(NatsServer::start().unwrap()));
        let url = nats.lock().unwrap().url();
        let emulator = GitHubEmulator::start_https().await.unwrap();
        emulator.add_repo(REPO);
        let token = token_file(emulator.token());
        let config = config(&emulator, &nats.lock().unwrap(), token.path(), None);
        // Before `broken`, NATS goes down; it comes back a second later.
        let hook: PhaseHook = {
            let nats = nats.clone();
            Arc::new(move |phase| {
                let nats = nats.clone();
                Box::pin(async move {
                    if phase == broken {
                        nats.lock().unwrap().kill();
                        let nats = nats.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await; // the outage
                            nats.lock().unwrap().restart().unwrap();
                        });
                    }
                })
            })
        };
        let shutdown = CancellationToken::new();
        let service = tokio::spawn(gha_poller::service::serve_with(
            config,
            Some(hook),
            shutdown.clone(),
        ));
        emulator
            .create_run(
                REPO,
                WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
            )
            .unwrap();
        let reader = Contract::new(
            async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(url)
                .await
                .unwrap(),
        );
        eventually("the streams", Duration::from_secs(30), || async {
            reader
                .jetstream()
                .get_stream(gha_proto::topology::JOBS_STREAM)
                .await
                .ok()
        })
        .await
        .unwrap();
        let events = support::read_events(&reader, "reader", 1).await;
        assert!(
            matches!(events[0], JobEvent::Queued(_)),
            "{broken:?}: {events:?}"
        );
        assert!(!service.is_finished(), "{broken:?}: the poller died");
        shutdown.cancel();
        service.await.unwrap().unwrap();
    }
}

/// `/healthz`'s status and body; `None` while the endpoint is not up.
async fn healthz(port: u16) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .ok()?;
    Some((response.status().as_u16(), response.text().await.ok()?))
}

#[tokio::test]
async fn healthz_follows_nats_and_github_credentials() {
    let mut nats = NatsServer::start().unwrap();
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo(REPO);
    // A token GitHub does not know (yet).
    let token = token_file("ghp_not_known_yet");
    let port = free_port();
    let shutdown = CancellationToken::new();
    let service = tokio::spawn(gha_poller::run(
        config(&emulator, &nats, token.path(), Some(port)),
        shutdown.clone(),
    ));
    let wait_for = |what: &'static str, want: fn(u16, &str) -> bool| async move {
        eventually(what, Duration::from_secs(20), || async {
            let (status, body) = healthz(port).await?;
            want(status, &body).then_some(body)
        })
        .await
        .unwrap()
    };
    let body = wait_for("github_auth failing", |status, body| {
        status == 503 && body.contains("github_auth: token:")
    })
    .await;
    assert!(body.contains("bad credentials"), "{body}");

    emulator.add_token("ghp_not_known_yet");
    wait_for("healthy once GitHub accepts the token", |status, _| {
        status == 200
    })
    .await;

    nats.kill();
    let body = wait_for("nats failing", |status, body| {
        status == 503 && body.contains("nats:")
    })
    .await;
    assert!(!body.contains("github_auth"), "{body}");
    nats.restart().unwrap();
    wait_for("healthy again", |status, _| status == 200).await;

    shutdown.cancel();
    service.await.unwrap().unwrap();
}
