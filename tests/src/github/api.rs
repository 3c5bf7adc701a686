//! The REST endpoints: workflow runs and jobs, repositories, runners and
//! their registration, app installation tokens, `/rate_limit`. JSON shapes
//! come from [`super::json`]; every route passes [`super::gate::gate`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Identity, can_access, can_access_org};
use super::json;
use super::model::Scope;
use super::paginate::{Page, paginate};
use super::runners::JitRequest;
use super::shared::Shared;
use super::world::{ApiError, World};

type Params = Path<HashMap<String, String>>;
type Q = Query<HashMap<String, String>>;
type ApiResult = Result<Response, ApiError>;

/// The REST routes (the gate is layered on by the server).
pub fn routes() -> Router<Arc<Shared>> {
    let runners = |prefix: &str| {
        Router::new()
            .route(&format!("{prefix}/actions/runners"), get(list_runners))
            .route(
                &format!("{prefix}/actions/runners/{{runner_id}}"),
                get(get_runner).delete(delete_runner),
            )
            .route(
                &format!("{prefix}/actions/runners/generate-jitconfig"),
                post(generate_jitconfig),
            )
            .route(
                &format!("{prefix}/actions/runners/registration-token"),
                post(registration_token),
            )
            .route(
                &format!("{prefix}/actions/runners/remove-token"),
                post(registration_token),
            )
    };
    Router::new()
        .route("/rate_limit", get(rate_limit))
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route("/repos/{owner}/{repo}/actions/runs/{run_id}", get(get_run))
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
            get(list_jobs),
        )
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel",
            post(cancel_run),
        )
        .route(
            "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun",
            post(rerun),
        )
        .route("/repos/{owner}/{repo}/actions/jobs/{job_id}", get(get_job))
        .route("/installation/repositories", get(installation_repos))
        .route("/orgs/{org}/repos", get(org_repos))
        .route(
            "/app/installations/{installation_id}/access_tokens",
            post(access_token),
        )
        .merge(runners("/repos/{owner}/{repo}"))
        .merge(runners("/orgs/{org}"))
}

fn json_response(status: StatusCode, value: Value, link: Option<String>) -> Response {
    let mut response = (status, Json(value)).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::from_str(&link).expect("ascii link"),
        );
    }
    response
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    params
        .get(name)
        .and_then(|value| value.parse().ok())
        .ok_or_else(ApiError::not_found)
}

/// `owner/name` of the path's repository, if the caller may see it.
fn visible_repo(
    world: &World,
    identity: &Identity,
    params: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let full = format!("{}/{}", params["owner"], params["repo"]);
    world.repo(&full)?;
    can_access(world, identity, &full)
        .then_some(full)
        .ok_or_else(ApiError::not_found)
}

/// The runner scope of the path (a repository or an organisation), if the
/// caller may act on it.
fn visible_scope(
    world: &World,
    identity: &Identity,
    params: &HashMap<String, String>,
) -> Result<Scope, ApiError> {
    match params.get("org") {
        Some(org) => {
            if world.repos_of(org).is_empty() || !can_access_org(world, identity, org) {
                return Err(ApiError::not_found());
            }
            Ok(Scope::Org(org.clone()))
        }
        None => visible_repo(world, identity, params).map(Scope::Repo),
    }
}

fn url(world: &World, path: &str) -> String {
    format!("{}{path}", world.base_url())
}

/// The path's run, if it is in the path's repository and the caller may
/// see it: `(owner/name, run id)`.
fn visible_run(
    world: &World,
    identity: &Identity,
    params: &HashMap<String, String>,
) -> Result<(String, u64), ApiError> {
    let repo = visible_repo(world, identity, params)?;
    let run_id = number(params, "run_id")?;
    if world.run(run_id)?.repo != repo {
        return Err(ApiError::not_found());
    }
    Ok((repo, run_id))
}

/// How GitHub wraps a list: `{"total_count": N, <key>: [...]}`.
struct Listing<'a> {
    path: &'a str,
    key: &'a str,
    /// Further top-level fields, e.g. `repository_selection`.
    extra: Value,
}

/// One page of a listing, with its `Link` header.
fn list_page<T>(
    world: &World,
    items: Vec<T>,
    query: &HashMap<String, String>,
    listing: Listing<'_>,
    render: impl Fn(T) -> Value,
) -> Response {
    let total = items.len();
    let (page, link) = paginate(
        items,
        Page::from_query(query),
        &url(world, listing.path),
        query,
    );
    let mut body = listing.extra;
    body["total_count"] = json!(total);
    body[listing.key] = Value::Array(page.into_iter().map(render).collect());
    json_response(StatusCode::OK, body, link)
}

/// A listing with no further fields.
fn listing<'a>(path: &'a str, key: &'a str) -> Listing<'a> {
    Listing {
        path,
        key,
        extra: json!({}),
    }
}

async fn rate_limit(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
) -> Response {
    let budget = shared
        .limiter
        .lock()
        .expect("limiter lock")
        .budget(&identity.rate_key(), chrono::Utc::now());
    let core = json!({
        "limit": budget.limit,
        "remaining": budget.remaining,
        "reset": budget.reset,
        "used": budget.used,
        "resource": "core"
    });
    json_response(
        StatusCode::OK,
        json!({"resources": {"core": core}, "rate": core}),
        None,
    )
}

async fn list_runs(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
    Query(query): Q,
) -> ApiResult {
    shared.read(|world, _| {
        let repo = visible_repo(world, &identity, &params)?;
        let runs = world.repo_runs(&repo, query.get("status").map(String::as_str))?;
        let path = format!("/repos/{repo}/actions/runs");
        Ok(list_page(
            world,
            runs,
            &query,
            listing(&path, "workflow_runs"),
            |run| json::run(world, run),
        ))
    })
}

async fn get_run(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    shared.read(|world, _| {
        let (_, run_id) = visible_run(world, &identity, &params)?;
        Ok(json_response(
            StatusCode::OK,
            json::run(world, world.run(run_id)?),
            None,
        ))
    })
}

async fn list_jobs(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
    Query(query): Q,
) -> ApiResult {
    shared.read(|world, _| {
        let (repo, run_id) = visible_run(world, &identity, &params)?;
        let all = match query.get("filter").map(String::as_str) {
            None | Some("latest") => false,
            Some("all") => true,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "filter must be latest or all, not {other}"
                )));
            }
        };
        let jobs = world.run_jobs(run_id, all)?;
        let path = format!("/repos/{repo}/actions/runs/{run_id}/jobs");
        Ok(list_page(
            world,
            jobs,
            &query,
            listing(&path, "jobs"),
            |job| json::job(world, job),
        ))
    })
}

async fn get_job(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    shared.read(|world, _| {
        let repo = visible_repo(world, &identity, &params)?;
        let job = world.job(number(&params, "job_id")?)?;
        if world.run(job.run_id)?.repo != repo {
            return Err(ApiError::not_found());
        }
        Ok(json_response(StatusCode::OK, json::job(world, job), None))
    })
}

async fn cancel_run(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    shared.mutate(|world, now| {
        let (_, run_id) = visible_run(world, &identity, &params)?;
        world.cancel_run(run_id, now)?;
        Ok(json_response(StatusCode::ACCEPTED, json!({}), None))
    })
}

async fn rerun(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    shared.mutate(|world, now| {
        let (_, run_id) = visible_run(world, &identity, &params)?;
        world.rerun(run_id, now)?;
        Ok(json_response(StatusCode::CREATED, json!({}), None))
    })
}

async fn installation_repos(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Query(query): Q,
) -> ApiResult {
    let Identity::Installation { id, .. } = identity else {
        return Err(ApiError::new(
            403,
            "You must authenticate with an installation access token in order to list repositories for an installation.",
        ));
    };
    shared.read(|world, _| {
        let installation = world
            .installations
            .get(&id)
            .ok_or_else(ApiError::not_found)?;
        let repos: Vec<_> = installation
            .repos
            .iter()
            .filter_map(|name| world.repo(name).ok())
            .collect();
        let listing = Listing {
            path: "/installation/repositories",
            key: "repositories",
            extra: json!({"repository_selection": "selected"}),
        };
        Ok(list_page(world, repos, &query, listing, |repo| {
            json::repo(world, repo)
        }))
    })
}

async fn org_repos(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
    Query(query): Q,
) -> ApiResult {
    shared.read(|world, _| {
        let org = &params["org"];
        let repos: Vec<_> = world
            .repos_of(org)
            .into_iter()
            .filter(|repo| can_access(world, &identity, &repo.full_name()))
            .collect();
        if world.repos_of(org).is_empty() {
            return Err(ApiError::not_found());
        }
        let (page, link) = paginate(
            repos,
            Page::from_query(&query),
            &url(world, &format!("/orgs/{org}/repos")),
            &query,
        );
        let repos: Vec<Value> = page
            .into_iter()
            .map(|repo| json::repo(world, repo))
            .collect();
        Ok(json_response(StatusCode::OK, Value::Array(repos), link))
    })
}

async fn list_runners(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
    Query(query): Q,
) -> ApiResult {
    shared.read(|world, now| {
        let scope = visible_scope(world, &identity, &params)?;
        let runners: Vec<Value> = world
            .runners_of(&scope)
            .into_iter()
            .map(|runner| json::runner(world, runner, now))
            .filter(|runner| {
                query
                    .get("name")
                    .is_none_or(|name| runner["name"] == **name)
            })
            .collect();
        let path = match &scope {
            Scope::Repo(repo) => format!("/repos/{repo}/actions/runners"),
            Scope::Org(org) => format!("/orgs/{org}/actions/runners"),
        };
        Ok(list_page(
            world,
            runners,
            &query,
            listing(&path, "runners"),
            |runner| runner,
        ))
    })
}

async fn get_runner(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    shared.read(|world, now| {
        let scope = visible_scope(world, &identity, &params)?;
        let id = number(&params, "runner_id")?;
        let runner = world
            .runners_of(&scope)
            .into_iter()
            .find(|runner| runner.id == id)
            .ok_or_else(ApiError::not_found)?;
        Ok(json_response(
            StatusCode::OK,
            json::runner(world, runner, now),
            None,
        ))
    })
}

async fn delete_runner(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    shared.mutate(|world, _| {
        let scope = visible_scope(world, &identity, &params)?;
        world.delete_runner(&scope, number(&params, "runner_id")?)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

#[derive(Debug, Deserialize)]
struct JitBody {
    name: Option<String>,
    runner_group_id: Option<u64>,
    labels: Option<Vec<String>>,
    work_folder: Option<String>,
}

async fn generate_jitconfig(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
    body: Option<Json<Value>>,
) -> ApiResult {
    let body: JitBody = body
        .and_then(|Json(value)| serde_json::from_value(value).ok())
        .ok_or_else(|| {
            ApiError::invalid(
                "Invalid request.\n\nThe request body is not valid JSON for this endpoint.",
            )
        })?;
    let missing = |field: &str| {
        ApiError::invalid(format!("Invalid request.\n\n\"{field}\" wasn't supplied."))
    };
    let request = JitRequest {
        name: body.name.ok_or_else(|| missing("name"))?,
        runner_group_id: body
            .runner_group_id
            .ok_or_else(|| missing("runner_group_id"))?,
        labels: body.labels.ok_or_else(|| missing("labels"))?,
        work_folder: body.work_folder.unwrap_or_else(|| "_work".into()),
    };
    shared.mutate(|world, now| {
        let scope = visible_scope(world, &identity, &params)?;
        let (id, encoded) = world.generate_jit_config(scope, request, now)?;
        let runner = json::runner(world, &world.runners[&id], now);
        Ok(json_response(
            StatusCode::CREATED,
            json!({"runner": runner, "encoded_jit_config": encoded}),
            None,
        ))
    })
}

async fn registration_token(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    shared.mutate(|world, now| {
        let scope = visible_scope(world, &identity, &params)?;
        let (token, expires) = world.registration_token(scope, now)?;
        Ok(json_response(
            StatusCode::CREATED,
            json!({"token": token, "expires_at": json::time(expires)}),
            None,
        ))
    })
}

async fn access_token(
    State(shared): State<Arc<Shared>>,
    Extension(identity): Extension<Identity>,
    Path(params): Params,
) -> ApiResult {
    let installation_id = number(&params, "installation_id")?;
    let now = chrono::Utc::now();
    let world = shared.world.lock().expect("world lock");
    let (token, expires, installation) = shared
        .credentials
        .lock()
        .expect("credentials lock")
        .issue_installation_token(&world, &identity, installation_id, now)?;
    let repositories: Vec<Value> = installation
        .repos
        .iter()
        .filter_map(|name| world.repo(name).ok())
        .map(|repo| json::repo(&world, repo))
        .collect();
    Ok(json_response(
        StatusCode::CREATED,
        json!({
            "token": token,
            "expires_at": json::time(expires),
            "permissions": {"actions": "read", "administration": "write", "metadata": "read", "organization_self_hosted_runners": "write"},
            "repository_selection": "selected",
            "repositories": repositories
        }),
        None,
    ))
}
