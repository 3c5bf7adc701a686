//! The world's rules, fed events and checked synchronously.

use std::time::Duration;

use chrono::{TimeZone, Utc};

use super::model::{Conclusion, JobSpec, JobStatus, OwnerKind, Scope, Timestamp, WorkflowSpec};
use super::runner_api::{JobResult, SessionRequest};
use super::runners::JitRequest;
use super::world::{Settings, World};

const REPO: &str = "acme/widgets";

fn t(seconds: i64) -> Timestamp {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

fn world() -> World {
    let mut world = World::new("http://emulator", Settings::default());
    world.add_repo(REPO, OwnerKind::Organization).unwrap();
    world
}

fn jit(name: &str, labels: &[&str]) -> JitRequest {
    JitRequest {
        name: name.into(),
        runner_group_id: 1,
        labels: labels.iter().map(|l| l.to_string()).collect(),
        work_folder: "_work".into(),
    }
}

/// Registers a JIT runner and connects it; returns its session id.
fn connect(world: &mut World, name: &str, labels: &[&str], now: Timestamp) -> String {
    let (_, encoded) = world
        .generate_jit_config(Scope::Repo(REPO.into()), jit(name, labels), now)
        .unwrap();
    let config = super::runner_api::JitConfig::decode(&encoded).unwrap();
    world
        .open_session(
            SessionRequest::Jit {
                jit_token: config.credentials.data.token,
            },
            now,
        )
        .unwrap()
        .session_id
}

/// Starts a run "CI" of one job `name` with `labels` in REPO.
fn one_job_run(world: &mut World, name: &str, labels: &[&str], at: Timestamp) -> u64 {
    world
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new(name, labels)]),
            at,
        )
        .unwrap()
}

fn actions(world: &mut World) -> Vec<(&'static str, String)> {
    world
        .take_events()
        .into_iter()
        .map(|event| {
            (
                event.action,
                event.payload["workflow_job"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn a_job_goes_queued_in_progress_completed_with_a_webhook_each() {
    let mut world = world();
    let run = one_job_run(&mut world, "build", &["slurm"], t(0));
    assert_eq!(world.run_status(run), (JobStatus::Queued, None));
    let session = connect(&mut world, "r1", &["self-hosted", "slurm"], t(1));
    let job = world.next_job(&session, t(2)).unwrap().unwrap();
    assert_eq!(world.run_status(run).0, JobStatus::InProgress);
    world
        .complete_job(&session, job.job_id, JobResult::Succeeded, t(3))
        .unwrap();
    assert_eq!(
        world.run_status(run),
        (JobStatus::Completed, Some(Conclusion::Success))
    );
    assert_eq!(
        actions(&mut world),
        [
            ("queued", "build".into()),
            ("in_progress", "build".into()),
            ("completed", "build".into())
        ]
    );
}

#[test]
fn a_job_with_needs_appears_only_when_its_needs_succeeded() {
    let mut world = world();
    let spec = WorkflowSpec::new(
        "CI",
        vec![
            JobSpec::new("build", &["slurm"]),
            JobSpec::new("test", &["slurm"]).needs(&["build"]),
        ],
    );
    let run = world.create_run(REPO, spec, t(0)).unwrap();
    let visible: Vec<String> = world
        .run_jobs(run, false)
        .unwrap()
        .iter()
        .map(|job| job.spec.name.clone())
        .collect();
    assert_eq!(visible, ["build"]);

    let session = connect(&mut world, "r1", &["slurm"], t(1));
    let build = world.next_job(&session, t(2)).unwrap().unwrap();
    assert_eq!(build.name, "build");
    // Nothing else to take while build runs: test is held back.
    let other = connect(&mut world, "r2", &["slurm"], t(2));
    assert_eq!(world.next_job(&other, t(3)).unwrap(), None);
    world.take_events();

    world
        .complete_job(&session, build.job_id, JobResult::Succeeded, t(4))
        .unwrap();
    assert_eq!(
        actions(&mut world),
        [("completed", "build".into()), ("queued", "test".into())]
    );
    // The run is in progress while its next job is still queued.
    assert_eq!(world.run_status(run).0, JobStatus::InProgress);
    let test = world.next_job(&other, t(5)).unwrap().unwrap();
    assert_eq!(test.name, "test");
}

#[test]
fn a_failed_need_skips_its_dependents_down_the_chain() {
    let mut world = world();
    let spec = WorkflowSpec::new(
        "CI",
        vec![
            JobSpec::new("build", &["slurm"]),
            JobSpec::new("test", &["slurm"]).needs(&["build"]),
            JobSpec::new("deploy", &["slurm"]).needs(&["test"]),
        ],
    );
    let run = world.create_run(REPO, spec, t(0)).unwrap();
    let session = connect(&mut world, "r1", &["slurm"], t(1));
    let build = world.next_job(&session, t(2)).unwrap().unwrap();
    world
        .complete_job(&session, build.job_id, JobResult::Failed, t(3))
        .unwrap();
    let conclusions: Vec<_> = world
        .run_jobs(run, false)
        .unwrap()
        .iter()
        .map(|job| (job.spec.name.clone(), job.conclusion))
        .collect();
    assert_eq!(
        conclusions,
        [
            ("build".into(), Some(Conclusion::Failure)),
            ("test".into(), Some(Conclusion::Skipped)),
            ("deploy".into(), Some(Conclusion::Skipped)),
        ]
    );
    assert_eq!(
        world.run_status(run),
        (JobStatus::Completed, Some(Conclusion::Failure))
    );
}

#[test]
fn a_runner_takes_the_oldest_queued_job_whose_labels_it_all_has() {
    let mut world = world();
    world
        .create_run(
            REPO,
            WorkflowSpec::new("gpu", vec![JobSpec::new("train", &["slurm", "gpu"])]),
            t(0),
        )
        .unwrap();
    world
        .create_run(
            REPO,
            WorkflowSpec::new("a", vec![JobSpec::new("first", &["SLURM"])]),
            t(1),
        )
        .unwrap();
    world
        .create_run(
            REPO,
            WorkflowSpec::new("b", vec![JobSpec::new("second", &["slurm"])]),
            t(2),
        )
        .unwrap();
    let cpu = connect(&mut world, "cpu", &["self-hosted", "slurm"], t(3));
    // Labels match case-insensitively; the gpu job is older but not servable.
    assert_eq!(world.next_job(&cpu, t(4)).unwrap().unwrap().name, "first");
    let gpu = connect(&mut world, "gpu", &["slurm", "gpu"], t(5));
    assert_eq!(world.next_job(&gpu, t(6)).unwrap().unwrap().name, "train");
}

#[test]
fn a_repository_runner_never_takes_another_repositorys_job() {
    let mut world = world();
    world
        .add_repo("acme/other", OwnerKind::Organization)
        .unwrap();
    world
        .create_run(
            "acme/other",
            WorkflowSpec::new("CI", vec![JobSpec::new("x", &["slurm"])]),
            t(0),
        )
        .unwrap();
    let session = connect(&mut world, "r1", &["slurm"], t(1));
    assert_eq!(world.next_job(&session, t(2)).unwrap(), None);
}

#[test]
fn a_jit_config_works_once_and_not_after_it_expires() {
    let mut world = world();
    let (_, encoded) = world
        .generate_jit_config(Scope::Repo(REPO.into()), jit("r1", &["slurm"]), t(0))
        .unwrap();
    let token = super::runner_api::JitConfig::decode(&encoded)
        .unwrap()
        .credentials
        .data
        .token;
    let request = SessionRequest::Jit { jit_token: token };
    world.open_session(request.clone(), t(1)).unwrap();
    let replay = world.open_session(request, t(2)).unwrap_err();
    assert_eq!(
        (replay.status, replay.message.as_str()),
        (401, "JIT config already used")
    );

    let (_, late) = world
        .generate_jit_config(Scope::Repo(REPO.into()), jit("r2", &["slurm"]), t(0))
        .unwrap();
    let token = super::runner_api::JitConfig::decode(&late)
        .unwrap()
        .credentials
        .data
        .token;
    let expired = world
        .open_session(SessionRequest::Jit { jit_token: token }, t(3601))
        .unwrap_err();
    assert_eq!(
        (expired.status, expired.message.as_str()),
        (401, "JIT config expired")
    );
}

#[test]
fn generate_jitconfig_refuses_duplicates_and_bad_input() {
    let mut world = world();
    let scope = Scope::Repo(REPO.into());
    world
        .generate_jit_config(scope.clone(), jit("r1", &["slurm"]), t(0))
        .unwrap();
    assert_eq!(
        world
            .generate_jit_config(scope.clone(), jit("r1", &["slurm"]), t(0))
            .unwrap_err()
            .status,
        409
    );
    assert_eq!(
        world
            .generate_jit_config(scope.clone(), jit("r2", &[]), t(0))
            .unwrap_err()
            .status,
        422
    );
    let mut unknown_group = jit("r3", &["slurm"]);
    unknown_group.runner_group_id = 99;
    assert_eq!(
        world
            .generate_jit_config(scope, unknown_group, t(0))
            .unwrap_err()
            .status,
        404
    );
    assert_eq!(
        world
            .generate_jit_config(Scope::Repo("acme/none".into()), jit("r4", &["slurm"]), t(0))
            .unwrap_err()
            .status,
        404
    );
}

#[test]
fn an_ephemeral_runner_takes_one_job_and_is_removed() {
    let mut world = world();
    world
        .create_run(
            REPO,
            WorkflowSpec::fan_out("m", 2, &["slurm"], vec![]),
            t(0),
        )
        .unwrap();
    let session = connect(&mut world, "r1", &["slurm"], t(1));
    let job = world.next_job(&session, t(2)).unwrap().unwrap();
    assert_eq!(world.runners_of(&Scope::Repo(REPO.into())).len(), 1);
    world
        .complete_job(&session, job.job_id, JobResult::Succeeded, t(3))
        .unwrap();
    assert!(world.runners_of(&Scope::Repo(REPO.into())).is_empty());
    assert!(world.next_job(&session, t(4)).is_err());
}

#[test]
fn cancelling_a_run_cancels_queued_jobs_and_asks_running_ones_to_stop() {
    let mut world = world();
    let run = world
        .create_run(
            REPO,
            WorkflowSpec::fan_out("m", 2, &["slurm"], vec![]),
            t(0),
        )
        .unwrap();
    let session = connect(&mut world, "r1", &["slurm"], t(1));
    let running = world.next_job(&session, t(2)).unwrap().unwrap();
    world.cancel_run(run, t(3)).unwrap();
    assert!(world.job_control(&session, running.job_id, t(4)).unwrap());
    let queued = world
        .run_jobs(run, false)
        .unwrap()
        .into_iter()
        .find(|job| job.id != running.job_id)
        .unwrap();
    assert_eq!(queued.conclusion, Some(Conclusion::Cancelled));
    world
        .complete_job(&session, running.job_id, JobResult::Cancelled, t(5))
        .unwrap();
    assert_eq!(
        world.run_status(run),
        (JobStatus::Completed, Some(Conclusion::Cancelled))
    );
    assert_eq!(world.cancel_run(run, t(6)).unwrap_err().status, 409);
}

#[test]
fn a_rerun_is_a_new_attempt_with_new_job_ids() {
    let mut world = world();
    let run = one_job_run(&mut world, "build", &["slurm"], t(0));
    assert_eq!(world.rerun(run, t(1)).unwrap_err().status, 403);
    world.cancel_run(run, t(2)).unwrap();
    let first = world.run_jobs(run, false).unwrap()[0].id;
    assert_eq!(world.rerun(run, t(3)).unwrap(), 2);
    let latest = world.run_jobs(run, false).unwrap();
    assert_eq!(latest.len(), 1);
    assert_ne!(latest[0].id, first);
    assert_eq!(latest[0].attempt, 2);
    assert_eq!(latest[0].status, JobStatus::Queued);
    assert_eq!(world.run_jobs(run, true).unwrap().len(), 2);
    assert_eq!(world.run_status(run).0, JobStatus::Queued);
}

#[test]
fn jobs_queued_too_long_are_cancelled() {
    let mut world = World::new(
        "http://emulator",
        Settings {
            queue_timeout: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    world.add_repo(REPO, OwnerKind::User).unwrap();
    let run = one_job_run(&mut world, "build", &["slurm"], t(0));
    world.tick(t(59));
    assert_eq!(world.run_status(run).0, JobStatus::Queued);
    world.tick(t(60));
    assert_eq!(
        world.run_status(run),
        (JobStatus::Completed, Some(Conclusion::Cancelled))
    );
}

#[test]
fn a_silent_runner_goes_offline_and_its_job_fails() {
    let mut world = world();
    let run = one_job_run(&mut world, "build", &["slurm"], t(0));
    let session = connect(&mut world, "r1", &["slurm"], t(0));
    world.next_job(&session, t(1)).unwrap().unwrap();
    world.tick(t(30));
    assert_eq!(world.run_status(run).0, JobStatus::InProgress);
    world.tick(t(31));
    assert_eq!(
        world.run_status(run),
        (JobStatus::Completed, Some(Conclusion::Failure))
    );
}

#[test]
fn a_busy_runner_cannot_be_deleted() {
    let mut world = world();
    one_job_run(&mut world, "build", &["slurm"], t(0));
    let scope = Scope::Repo(REPO.into());
    let session = connect(&mut world, "r1", &["slurm"], t(0));
    let idle_session = connect(&mut world, "r2", &["other"], t(0));
    world.next_job(&session, t(1)).unwrap().unwrap();
    let ids: Vec<(u64, bool)> = world
        .runners_of(&scope)
        .iter()
        .map(|runner| (runner.id, runner.job.is_some()))
        .collect();
    let busy = ids.iter().find(|(_, busy)| *busy).unwrap().0;
    let idle = ids.iter().find(|(_, busy)| !*busy).unwrap().0;
    assert_eq!(world.delete_runner(&scope, busy).unwrap_err().status, 422);
    world.delete_runner(&scope, idle).unwrap();
    assert!(world.next_job(&idle_session, t(2)).is_err());
    assert_eq!(world.delete_runner(&scope, idle).unwrap_err().status, 404);
}

#[test]
fn a_held_job_waits_until_released() {
    let mut world = world();
    let run = world
        .create_run(
            REPO,
            WorkflowSpec::new(
                "CI",
                vec![JobSpec::new("deploy", &["slurm"]).hold(JobStatus::Waiting)],
            ),
            t(0),
        )
        .unwrap();
    assert_eq!(world.run_status(run).0, JobStatus::Waiting);
    let session = connect(&mut world, "r1", &["slurm"], t(1));
    assert_eq!(world.next_job(&session, t(2)).unwrap(), None);
    let job_id = world.run_jobs(run, false).unwrap()[0].id;
    world.release_job(job_id, t(3)).unwrap();
    assert_eq!(
        actions(&mut world),
        [("waiting", "deploy".into()), ("queued", "deploy".into())]
    );
    assert!(world.next_job(&session, t(4)).unwrap().is_some());
}

#[test]
fn workflows_with_cycles_or_unknown_needs_are_refused() {
    let mut world = world();
    let cycle = WorkflowSpec::new(
        "CI",
        vec![
            JobSpec::new("a", &["slurm"]).needs(&["b"]),
            JobSpec::new("b", &["slurm"]).needs(&["a"]),
        ],
    );
    assert_eq!(world.create_run(REPO, cycle, t(0)).unwrap_err().status, 422);
    let unknown = WorkflowSpec::new("CI", vec![JobSpec::new("a", &["slurm"]).needs(&["zzz"])]);
    assert_eq!(
        world.create_run(REPO, unknown, t(0)).unwrap_err().status,
        422
    );
}

#[test]
fn an_assigned_job_carries_its_attempt_its_key_and_its_workflow() {
    let mut world = world();
    let spec = WorkflowSpec::new(
        "CI",
        vec![JobSpec::new("Build (linux)", &["slurm"]).key("build")],
    );
    let run = world.create_run(REPO, spec, t(0)).unwrap();
    world.cancel_run(run, t(1)).unwrap();
    world.rerun(run, t(2)).unwrap();
    let session = connect(&mut world, "r1", &["slurm"], t(3));
    let job = world.next_job(&session, t(4)).unwrap().unwrap();
    assert_eq!(job.run_id, run);
    assert_eq!(job.run_attempt, 2, "the re-run's attempt");
    assert_eq!(job.name, "Build (linux)");
    assert_eq!(job.job_key, "build", "GITHUB_JOB is the key, not the name");
    assert_eq!(job.workflow, "CI");
    assert_eq!(job.repository, REPO);
}

#[test]
fn matrix_legs_share_one_key_and_a_job_without_one_uses_its_name() {
    let spec = WorkflowSpec::fan_out("test", 2, &["slurm"], vec![]);
    let keys: Vec<&str> = spec.jobs.iter().map(JobSpec::job_key).collect();
    assert_eq!(keys, ["test", "test"]);
    assert_eq!(JobSpec::new("lint", &["slurm"]).job_key(), "lint");
}
