//! The reconciliation pass against the GitHub emulator: nothing missed
//! (queued jobs inside in-progress runs, every page), 304s reused, demand
//! withdrawn when a run goes away, policy applied.

use std::sync::Arc;

use gha_github::GitHubClient;
use gha_poller::observe::Observation;
use gha_poller::policy::{JobPolicy, Refusal};
use gha_poller::poll::RepoPoller;
use gha_proto::v1::JobStatus;
use gha_testkit::github::runner_api::JobResult;
use gha_testkit::github::{GitHubEmulator, JobSpec, WorkflowSpec};

mod support;

const REPO: &str = "acme/widgets";

async fn setup() -> (GitHubEmulator, RepoPoller) {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo(REPO);
    let client = Arc::new(GitHubClient::new(
        &support::endpoint(&emulator),
        emulator.token().to_string().into(),
    ));
    (emulator, RepoPoller::new(client, JobPolicy::default()))
}

/// One pass, every observation acknowledged as a successful publication
/// would.
async fn poll(poller: &mut RepoPoller) -> gha_poller::poll::Pass {
    let pass = poller.poll(REPO, 0).await.unwrap();
    for observation in &pass.observations {
        poller.acknowledge(observation);
    }
    pass
}

fn queued_ids(observations: &[Observation]) -> Vec<i64> {
    let mut ids: Vec<i64> = observations
        .iter()
        .filter_map(|o| match o {
            Observation::Queued(job) => Some(job.job_id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn queued_jobs_inside_in_progress_runs_are_found() {
    let (emulator, mut poller) = setup().await;
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new(
                "CI",
                vec![
                    JobSpec::new("build", &["slurm"]),
                    JobSpec::new("test", &["slurm"]).needs(&["build"]),
                ],
            ),
        )
        .unwrap();
    let runner = emulator.connect_runner(REPO, "r1", &["slurm"]).unwrap();
    let build = runner.take_job().unwrap().unwrap();
    runner.finish(build.job_id, JobResult::Succeeded).unwrap();
    // The run is in progress; its second job is queued.
    let pass = poll(&mut poller).await;
    let test = emulator
        .run_jobs(run_id, false)
        .into_iter()
        .find(|job| job.spec.name == "test")
        .unwrap();
    assert_eq!(queued_ids(&pass.observations), [test.id as i64]);
    assert!(pass.busy);
}

#[tokio::test]
async fn every_page_is_read_and_an_unchanged_repository_costs_only_304s() {
    let (emulator, mut poller) = setup().await;
    for _ in 0..105 {
        emulator
            .create_run(
                REPO,
                WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
            )
            .unwrap();
    }
    let first = poll(&mut poller).await;
    assert_eq!(queued_ids(&first.observations).len(), 105);
    let counted = |requests: &[gha_testkit::github::RequestRecord]| {
        requests.iter().filter(|r| r.status != 304).count()
    };
    let before = counted(&emulator.requests());

    let second = poll(&mut poller).await;
    assert!(
        second.observations.is_empty(),
        "nothing new: {:?}",
        second.observations.len()
    );
    assert_eq!(
        second.not_modified, second.requests,
        "every request answered 304"
    );
    assert_eq!(
        counted(&emulator.requests()),
        before,
        "a 304 pass spends no rate limit"
    );
}

#[tokio::test]
async fn demand_is_withdrawn_when_its_run_is_cancelled() {
    let (emulator, mut poller) = setup().await;
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
        )
        .unwrap();
    let first = poll(&mut poller).await;
    assert_eq!(queued_ids(&first.observations).len(), 1);
    emulator.cancel_run(run_id).unwrap();

    let second = poll(&mut poller).await;
    let [Observation::Changed(change)] = second.observations.as_slice() else {
        panic!("{:?}", second.observations)
    };
    assert_eq!(change.status, JobStatus::Cancelled as i32);
    assert!(!second.busy);
    // Withdrawn once: the next pass has nothing to say.
    assert!(poll(&mut poller).await.observations.is_empty());
}

#[tokio::test]
async fn label_and_fork_policy_apply_to_polled_jobs() {
    let (emulator, mut poller) = setup().await;
    emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("hosted", &["ubuntu-latest"])]),
        )
        .unwrap();
    let mut fork = WorkflowSpec::new("PR", vec![JobSpec::new("untrusted", &["slurm"])]);
    fork.from_fork = true;
    emulator.create_run(REPO, fork).unwrap();
    let pass = poll(&mut poller).await;
    assert!(pass.observations.is_empty());
    let mut reasons: Vec<&str> = pass.refused.iter().map(|(_, r)| r.metric_label()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["fork_pull_request", "missing_marker"]);
    assert!(
        pass.refused
            .iter()
            .any(|(_, r)| *r == Refusal::ForkPullRequest)
    );
}

#[tokio::test]
async fn a_status_change_whose_publication_failed_is_offered_again() {
    let (emulator, mut poller) = setup().await;
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
        )
        .unwrap();
    poll(&mut poller).await;
    emulator.cancel_run(run_id).unwrap();
    // The cancellation is seen but its publication fails (not
    // acknowledged): the next pass offers it again, until one succeeds.
    for _ in 0..2 {
        let pass = poller.poll(REPO, 0).await.unwrap();
        assert!(
            matches!(pass.observations.as_slice(), [Observation::Changed(_)]),
            "{:?}",
            pass.observations
        );
    }
    assert_eq!(poll(&mut poller).await.observations.len(), 1);
    assert!(poll(&mut poller).await.observations.is_empty());
}

#[tokio::test]
async fn the_etag_cache_keeps_only_the_runs_of_the_last_pass() {
    let (emulator, mut poller) = setup().await;
    let runs: Vec<u64> = (0..3)
        .map(|_| {
            emulator
                .create_run(
                    REPO,
                    WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
                )
                .unwrap()
        })
        .collect();
    poll(&mut poller).await;
    // Two run listings (queued, in progress) and a job page per run.
    assert_eq!(poller.cache_entries(), 2 + 3);
    for run in &runs {
        emulator.cancel_run(*run).unwrap();
    }
    // The pass that sees them go reads their jobs once more; the next
    // one has nothing of theirs left to keep.
    poll(&mut poller).await;
    poll(&mut poller).await;
    assert_eq!(poller.cache_entries(), 2);
    assert_eq!(poller.tracked(), 0);
}

#[tokio::test]
async fn a_run_whose_fork_was_deleted_is_refused() {
    let (emulator, mut poller) = setup().await;
    let mut spec = WorkflowSpec::new("PR", vec![JobSpec::new("untrusted", &["slurm"])]);
    spec.from_fork = true;
    spec.fork_deleted = true;
    emulator.create_run(REPO, spec).unwrap();
    let pass = poll(&mut poller).await;
    assert!(pass.observations.is_empty(), "{:?}", pass.observations);
    assert_eq!(pass.refused.len(), 1);
    assert_eq!(pass.refused[0].1, Refusal::ForkPullRequest);
}

const APP_PRIVATE_KEY: &[u8] = include_bytes!("../../tests/fixtures/github-app-test-key.pem");
const APP_PUBLIC_KEY: &[u8] = include_bytes!("../../tests/fixtures/github-app-test-key.pub.pem");

#[tokio::test]
async fn polled_jobs_carry_the_installation_they_were_seen_through() {
    let emulator = GitHubEmulator::start_https().await.unwrap();
    emulator.add_repo(REPO);
    emulator.register_app(11, APP_PUBLIC_KEY).unwrap();
    let installation = emulator.add_installation(11, "acme", &[REPO]);
    let endpoint = support::endpoint(&emulator);
    let app = Arc::new(gha_github::AppCredentials::new(&endpoint, 11, APP_PRIVATE_KEY).unwrap());
    let client = Arc::new(GitHubClient::with_auth(
        &endpoint,
        gha_github::Auth::Installation { app, installation },
    ));
    let mut poller = RepoPoller::new(client, JobPolicy::default());
    emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["slurm"])]),
        )
        .unwrap();
    let pass = poll(&mut poller).await;
    let [Observation::Queued(job)] = pass.observations.as_slice() else {
        panic!("{:?}", pass.observations)
    };
    assert_eq!(job.installation_id, installation as i64);
}
