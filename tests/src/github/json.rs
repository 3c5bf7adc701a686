//! GitHub's JSON shapes, rendered from the world: repositories, workflow
//! runs, jobs, runners and `workflow_job` webhook payloads, with the fields
//! GitHub documents (and octocrab requires).

use chrono::SecondsFormat;
use serde_json::{Value, json};

use super::model::{Job, JobStatus, OwnerKind, Repo, Run, Runner, Timestamp};
use super::world::World;

/// GitHub's timestamp format: `2024-05-01T12:00:00Z`.
pub fn time(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn node_id(prefix: &str, id: u64) -> String {
    use base64::Engine;
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(id.to_be_bytes())
    )
}

fn html(world: &World) -> String {
    format!("{}/_html", world.base_url())
}

/// A user or organisation, as in `owner` and `sender`.
pub fn account(world: &World, login: &str, id: u64, kind: OwnerKind) -> Value {
    let api = world.base_url();
    let kind_path = match kind {
        OwnerKind::Organization => "orgs",
        OwnerKind::User => "users",
    };
    json!({
        "login": login,
        "id": id,
        "node_id": node_id("O", id),
        "avatar_url": format!("{}/avatars/{login}", html(world)),
        "gravatar_id": "",
        "url": format!("{api}/{kind_path}/{login}"),
        "html_url": format!("{}/{login}", html(world)),
        "followers_url": format!("{api}/users/{login}/followers"),
        "following_url": format!("{api}/users/{login}/following{{/other_user}}"),
        "gists_url": format!("{api}/users/{login}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/users/{login}/subscriptions"),
        "organizations_url": format!("{api}/users/{login}/orgs"),
        "repos_url": format!("{api}/{kind_path}/{login}/repos"),
        "events_url": format!("{api}/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("{api}/users/{login}/received_events"),
        "type": match kind { OwnerKind::Organization => "Organization", OwnerKind::User => "User" },
        "user_view_type": "public",
        "site_admin": false
    })
}

/// A repository.
pub fn repo(world: &World, repo: &Repo) -> Value {
    let api = format!("{}/repos/{}", world.base_url(), repo.full_name());
    json!({
        "id": repo.id,
        "node_id": node_id("R", repo.id),
        "name": repo.name,
        "full_name": repo.full_name(),
        "private": repo.private,
        "owner": account(world, &repo.owner, repo.owner_id, repo.owner_kind),
        "html_url": format!("{}/{}", html(world), repo.full_name()),
        "description": null,
        "fork": false,
        "url": api,
        "hooks_url": format!("{api}/hooks"),
        "default_branch": "main",
        "visibility": if repo.private { "private" } else { "public" },
        "archived": false,
        "disabled": false
    })
}

/// A workflow run.
pub fn run(world: &World, run: &Run) -> Value {
    let repository = world.repo(&run.repo).expect("a run's repo exists");
    let api = format!("{}/repos/{}", world.base_url(), run.repo);
    let (status, conclusion) = world.run_status(run.id);
    let slug = run.spec.name.to_ascii_lowercase().replace(' ', "-");
    let actor = account(
        world,
        &repository.owner,
        repository.owner_id,
        repository.owner_kind,
    );
    let head_repository = if run.spec.fork_deleted {
        Value::Null
    } else if run.spec.from_fork {
        let fork = Repo {
            id: repository.id + 1_000_000,
            owner: format!("{}-fork", repository.owner),
            owner_id: repository.owner_id + 1_000_000,
            owner_kind: OwnerKind::User,
            name: repository.name.clone(),
            private: false,
        };
        let mut value = repo(world, &fork);
        value["fork"] = json!(true);
        value
    } else {
        repo(world, repository)
    };
    json!({
        "id": run.id,
        "name": run.spec.name,
        "node_id": node_id("WFR", run.id),
        "head_branch": run.spec.head_branch,
        "head_sha": run.head_sha,
        "path": format!(".github/workflows/{slug}.yml"),
        "display_title": run.spec.name,
        "run_number": run.run_number,
        "event": run.spec.event,
        "status": status.as_str(),
        "conclusion": conclusion.map(|c| c.as_str()),
        "workflow_id": run.workflow_id,
        "check_suite_id": run.id + 1,
        "check_suite_node_id": node_id("CS", run.id + 1),
        "url": format!("{api}/actions/runs/{}", run.id),
        "html_url": format!("{}/{}/actions/runs/{}", html(world), run.repo, run.id),
        "pull_requests": [],
        "created_at": time(run.created_at),
        "updated_at": time(run.updated_at),
        "actor": actor,
        "run_attempt": run.attempt,
        "referenced_workflows": [],
        "run_started_at": time(run.run_started_at),
        "triggering_actor": actor,
        "jobs_url": format!("{api}/actions/runs/{}/jobs", run.id),
        "logs_url": format!("{api}/actions/runs/{}/logs", run.id),
        "check_suite_url": format!("{api}/check-suites/{}", run.id + 1),
        "artifacts_url": format!("{api}/actions/runs/{}/artifacts", run.id),
        "cancel_url": format!("{api}/actions/runs/{}/cancel", run.id),
        "rerun_url": format!("{api}/actions/runs/{}/rerun", run.id),
        "previous_attempt_url": (run.attempt > 1).then(|| format!("{api}/actions/runs/{}/attempts/{}", run.id, run.attempt - 1)),
        "workflow_url": format!("{api}/actions/workflows/{}", run.workflow_id),
        "head_commit": {
            "id": run.head_sha,
            "tree_id": run.head_sha.chars().rev().collect::<String>(),
            "message": format!("Run {}", run.spec.name),
            "timestamp": time(run.created_at),
            "author": {"name": repository.owner, "email": format!("{}@users.noreply.example", repository.owner)},
            "committer": {"name": "GitHub", "email": "noreply@github.com"}
        },
        "repository": repo(world, repository),
        "head_repository": head_repository
    })
}

/// A job of a workflow run.
pub fn job(world: &World, job: &Job) -> Value {
    let run = world.run(job.run_id).expect("a job's run exists");
    let api = format!("{}/repos/{}", world.base_url(), run.repo);
    let steps: Vec<Value> = if job.status == JobStatus::Completed {
        job.spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, _)| {
                json!({
                    "name": format!("Step {}", i + 1),
                    "status": "completed",
                    "conclusion": job.conclusion.map(|c| c.as_str()),
                    "number": i + 1,
                    "started_at": job.started_at.map(time),
                    "completed_at": job.completed_at.map(time)
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let (runner_id, runner_name, group_id, group_name) = match &job.runner {
        Some((id, name)) => (json!(id), json!(name), json!(1), json!("Default")),
        None => (Value::Null, Value::Null, Value::Null, Value::Null),
    };
    json!({
        "id": job.id,
        "run_id": job.run_id,
        "workflow_name": run.spec.name,
        "head_branch": run.spec.head_branch,
        "run_url": format!("{api}/actions/runs/{}", job.run_id),
        "run_attempt": job.attempt,
        "node_id": node_id("CR", job.id),
        "head_sha": run.head_sha,
        "url": format!("{api}/actions/jobs/{}", job.id),
        "html_url": format!("{}/{}/actions/runs/{}/job/{}", html(world), run.repo, job.run_id, job.id),
        "status": job.status.as_str(),
        "conclusion": job.conclusion.map(|c| c.as_str()),
        "created_at": time(job.created_at),
        "started_at": time(job.started_at.unwrap_or(job.created_at)),
        "completed_at": job.completed_at.map(time),
        "name": job.spec.name,
        "steps": steps,
        "check_run_url": format!("{api}/check-runs/{}", job.id),
        "labels": job.spec.labels,
        "runner_id": runner_id,
        "runner_name": runner_name,
        "runner_group_id": group_id,
        "runner_group_name": group_name
    })
}

/// A self-hosted runner.
pub fn runner(world: &World, runner: &Runner, now: Timestamp) -> Value {
    let labels: Vec<Value> = runner
        .labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let read_only = ["self-hosted", "Linux", "X64"].contains(&label.as_str());
            json!({
                "id": i + 1,
                "name": label,
                "type": if read_only { "read-only" } else { "custom" }
            })
        })
        .collect();
    json!({
        "id": runner.id,
        "runner_group_id": runner.group_id,
        "name": runner.name,
        "os": "Linux",
        "status": if world.is_online(runner, now) { "online" } else { "offline" },
        "busy": runner.job.is_some(),
        "ephemeral": runner.ephemeral,
        "labels": labels
    })
}

/// A `workflow_job` webhook payload.
pub fn workflow_job_event(world: &World, action: &str, job_id: u64) -> Value {
    let job_ref = world.job_any(job_id).expect("event for an existing job");
    let run = world.run(job_ref.run_id).expect("a job's run exists");
    let repository = world.repo(&run.repo).expect("a run's repo exists");
    let mut payload = json!({
        "action": action,
        "workflow_job": job(world, job_ref),
        "repository": repo(world, repository),
        "sender": account(world, &repository.owner, repository.owner_id, repository.owner_kind)
    });
    if repository.owner_kind == OwnerKind::Organization {
        payload["organization"] = json!({
            "login": repository.owner,
            "id": repository.owner_id,
            "node_id": node_id("O", repository.owner_id),
            "url": format!("{}/orgs/{}", world.base_url(), repository.owner)
        });
    }
    if let Some(installation) = world.installation_of(&run.repo) {
        payload["installation"] = json!({
            "id": installation.id,
            "node_id": node_id("MDIz", installation.id)
        });
    }
    payload
}
