//! A token shared with the scheduler (or anything else) is not overspent:
//! the poll paces itself by what GitHub reports left of the token's budget,
//! keeps a tenth of the limit for the others, and never runs it dry.

use std::sync::Arc;
use std::time::Duration;

use gha_github::GitHubClient;
use gha_poller::cli::Watched;
use gha_poller::metrics::PollerMetrics;
use gha_poller::policy::JobPolicy;
use gha_poller::poll_loop::{PollLoop, REANNOUNCE_AFTER};
use gha_proto::Contract;
use gha_testkit::NatsServer;
use gha_testkit::github::{
    EmulatorConfig, GitHubEmulator, JobSpec, RateLimitSettings, WorkflowSpec,
};
use tokio_util::sync::CancellationToken;

mod support;

const REPO: &str = "acme/widgets";
const LIMIT: u32 = 200;

#[tokio::test]
async fn the_poll_leaves_a_shared_tokens_reserve_alone() {
    let nats = NatsServer::start().unwrap();
    let contract = Contract::new(async_nats::connect(nats.url()).await.unwrap());
    contract.ensure_topology().await.unwrap();
    let emulator = GitHubEmulator::start_with(EmulatorConfig {
        rate_limits: RateLimitSettings {
            primary_limit: LIMIT,
            ..RateLimitSettings::default()
        },
        https: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator.add_repo(REPO);
    let client = Arc::new(GitHubClient::new(
        &support::endpoint(&emulator),
        emulator.token().to_string().into(),
    ));
    // Someone else (the scheduler) spent 150 of the token's 200.
    for _ in 0..150 {
        client
            .get::<serde_json::Value>(&format!("/repos/{REPO}/actions/runs"), None)
            .await
            .unwrap();
    }
    assert_eq!(client.budget().unwrap().remaining, 50);

    // A poll whose own budget would allow thousands, in a repository that
    // changes all the time (every pass costs counted requests).
    let shutdown = CancellationToken::new();
    let poll = PollLoop {
        github: client.clone(),
        contract: contract.clone(),
        watched: Watched::Repos(vec![REPO.into()]),
        policy: JobPolicy::default(),
        idle_interval: Duration::from_millis(100),
        busy_interval: Duration::from_millis(100),
        budget_per_hour: 100_000,
        reannounce_after: REANNOUNCE_AFTER,
        metrics: PollerMetrics::default(),
        status: Default::default(),
    };
    let task = tokio::spawn(poll.run(shutdown.clone()));
    let mut interval = tokio::time::interval(Duration::from_millis(150));
    for _ in 0..40 {
        interval.tick().await; // the workload's pace, not a synchronisation
        emulator
            .create_run(
                REPO,
                WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
            )
            .unwrap();
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let refused = emulator
        .requests()
        .iter()
        .filter(|request| request.status == 403)
        .count();
    assert_eq!(refused, 0, "the budget was never run dry");
    let remaining = client.budget().unwrap().remaining;
    // The reserve is a tenth of the limit (20); one pass may overshoot.
    assert!(
        remaining >= 15,
        "the poll spent the shared token down to {remaining}"
    );
    assert!(remaining < 50, "the poll did work too ({remaining} left)");
}
