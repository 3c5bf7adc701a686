//! The emulator's REST API over real HTTP: shapes octocrab accepts, ETags,
//! pagination, rate limits, authentication, faults.

use std::time::Duration;

use gha_testkit::github::{
    EmulatorConfig, Fault, FaultKind, GitHubEmulator, JobSpec, RateLimitSettings, WorkflowSpec,
};
use reqwest::StatusCode;
use serde_json::Value;

const REPO: &str = "acme/widgets";

async fn emulator_with(rate_limits: RateLimitSettings) -> GitHubEmulator {
    let emulator = GitHubEmulator::start_with(EmulatorConfig {
        rate_limits,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator.add_repo(REPO);
    emulator
}

async fn emulator() -> GitHubEmulator {
    emulator_with(RateLimitSettings::default()).await
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

fn get(emulator: &GitHubEmulator, path: &str) -> reqwest::RequestBuilder {
    client()
        .get(format!("{}{path}", emulator.url()))
        .bearer_auth(emulator.token())
}

/// `POST <scope>/actions/runners/generate-jitconfig` with `body`, where
/// `scope` is `/repos/o/r` or `/orgs/o`.
async fn post_jitconfig(emulator: &GitHubEmulator, scope: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!(
            "{}{scope}/actions/runners/generate-jitconfig",
            emulator.url()
        ))
        .bearer_auth(emulator.token())
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn jit_body(name: &str) -> Value {
    serde_json::json!({"name": name, "runner_group_id": 1, "labels": ["slurm"]})
}

/// `GET path` with the emulator's token.
async fn send_get(emulator: &GitHubEmulator, path: &str) -> reqwest::Response {
    get(emulator, path).send().await.unwrap()
}

/// `GET path` with the emulator's token, as JSON.
async fn get_json(emulator: &GitHubEmulator, path: &str) -> Value {
    send_get(emulator, path).await.json().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn octocrab_lists_runs_and_jobs_and_creates_a_jit_config() {
    let emulator = emulator().await;
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["self-hosted", "slurm"])]),
        )
        .unwrap();
    let github = octocrab::Octocrab::builder()
        .base_uri(emulator.url())
        .unwrap()
        .personal_token(emulator.token().to_string())
        .build()
        .unwrap();

    let runs = github
        .workflows("acme", "widgets")
        .list_all_runs()
        .send()
        .await
        .expect("octocrab parses the runs");
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].id.into_inner(), run_id);
    assert_eq!(runs.items[0].status, "queued");

    let jobs = github
        .workflows("acme", "widgets")
        .list_jobs(octocrab::models::RunId(run_id))
        .send()
        .await
        .expect("octocrab parses the jobs");
    assert_eq!(jobs.items.len(), 1);
    assert_eq!(jobs.items[0].labels, ["self-hosted", "slurm"]);
    assert!(jobs.items[0].runner_name.is_none());

    let jit = github
        .actions()
        .create_repo_jit_runner_config(
            "acme",
            "widgets",
            "gha-node1-1",
            octocrab::models::RunnerGroupId(1),
            vec!["self-hosted".into(), "slurm".into()],
        )
        .send()
        .await
        .expect("octocrab parses the JIT config");
    assert_eq!(jit.runner.name, "gha-node1-1");
    assert_eq!(jit.runner.status, "offline");
    let config =
        gha_testkit::github::runner_api::JitConfig::decode(&jit.encoded_jit_config).unwrap();
    assert_eq!(config.runner.agent_name, "gha-node1-1");
}

#[tokio::test]
async fn a_304_for_an_unchanged_resource_costs_no_rate_limit() {
    let emulator = emulator().await;
    emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("b", &["slurm"])]),
        )
        .unwrap();
    let path = "/repos/acme/widgets/actions/runs?status=queued";
    let first = send_get(&emulator, path).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = header(&first, "etag");
    let remaining: u32 = header(&first, "x-ratelimit-remaining").parse().unwrap();
    assert_eq!(header(&first, "x-ratelimit-used"), "1");

    let again = get(&emulator, path)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        header(&again, "x-ratelimit-remaining"),
        remaining.to_string()
    );
    assert!(again.bytes().await.unwrap().is_empty());

    // A change gives a new representation and a new ETag.
    emulator
        .create_run(
            REPO,
            WorkflowSpec::new("CI", vec![JobSpec::new("b", &["slurm"])]),
        )
        .unwrap();
    let changed = get(&emulator, path)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(header(&changed, "etag"), etag);
    assert_eq!(
        header(&changed, "x-ratelimit-remaining"),
        (remaining - 1).to_string()
    );
}

#[tokio::test]
async fn pages_follow_link_headers_and_per_page_is_capped_at_100() {
    let emulator = emulator().await;
    let run_id = emulator
        .create_run(
            REPO,
            WorkflowSpec::fan_out("matrix", 105, &["slurm"], vec![]),
        )
        .unwrap();
    let mut url = format!(
        "{}/repos/acme/widgets/actions/runs/{run_id}/jobs?per_page=40",
        emulator.url()
    );
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let response = client()
            .get(&url)
            .bearer_auth(emulator.token())
            .send()
            .await
            .unwrap();
        let link = response
            .headers()
            .get("link")
            .map(|value| value.to_str().unwrap().to_string());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["total_count"], 105);
        ids.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|job| job["id"].as_u64().unwrap()),
        );
        pages += 1;
        let next = link.and_then(|link| {
            link.split(", ")
                .find(|part| part.ends_with("rel=\"next\""))
                .map(|part| part[1..part.find('>').unwrap()].to_string())
        });
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(pages, 3);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 105);

    let capped: Value = get(
        &emulator,
        &format!("/repos/acme/widgets/actions/runs/{run_id}/jobs?per_page=500"),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(capped["jobs"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn an_exhausted_primary_limit_refuses_until_reset_but_rate_limit_stays_free() {
    let emulator = emulator_with(RateLimitSettings {
        primary_limit: 2,
        ..RateLimitSettings::default()
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            send_get(&emulator, "/repos/acme/widgets/actions/runs")
                .await
                .status(),
            200
        );
    }
    let refused = send_get(&emulator, "/repos/acme/widgets/actions/runs").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "x-ratelimit-remaining"), "0");
    let reset: i64 = header(&refused, "x-ratelimit-reset").parse().unwrap();
    assert!(reset > chrono::Utc::now().timestamp());
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("rate limit"),
        "{body}"
    );

    let limits = send_get(&emulator, "/rate_limit").await;
    assert_eq!(limits.status(), StatusCode::OK);
    let body: Value = limits.json().await.unwrap();
    assert_eq!(body["resources"]["core"]["remaining"], 0);
    assert_eq!(body["rate"]["limit"], 2);
}

#[tokio::test]
async fn the_exhausted_status_can_be_429() {
    let emulator = emulator_with(RateLimitSettings {
        primary_limit: 1,
        exhausted_status: 429,
        ..RateLimitSettings::default()
    })
    .await;
    send_get(&emulator, "/repos/acme/widgets/actions/runs").await;
    let refused = send_get(&emulator, "/repos/acme/widgets/actions/runs").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn posts_cost_five_points_and_hit_the_secondary_limit_with_retry_after() {
    let emulator = emulator_with(RateLimitSettings {
        points_per_minute: 10,
        retry_after: Duration::from_secs(7),
        ..RateLimitSettings::default()
    })
    .await;
    let post = |name: &str| post_jitconfig(&emulator, "/repos/acme/widgets", jit_body(name));
    assert_eq!(post("a").await.status(), StatusCode::CREATED);
    assert_eq!(post("b").await.status(), StatusCode::CREATED);
    let refused = post("c").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&refused, "retry-after"), "7");
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("secondary rate limit")
    );
    // GETs on another endpoint are unaffected.
    assert_eq!(
        send_get(&emulator, "/repos/acme/widgets/actions/runners")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_secondary_limit_storm_refuses_the_next_requests() {
    let emulator = emulator().await;
    emulator.secondary_limit_storm(2);
    for _ in 0..2 {
        let refused = send_get(&emulator, "/repos/acme/widgets/actions/runs").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(header(&refused, "retry-after"), "60");
    }
    assert_eq!(
        send_get(&emulator, "/repos/acme/widgets/actions/runs")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn missing_or_wrong_tokens_get_401_and_both_schemes_work() {
    let emulator = emulator().await;
    let url = format!("{}/repos/acme/widgets/actions/runs", emulator.url());
    let missing = client().get(&url).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["message"],
        "Requires authentication"
    );
    let wrong = client()
        .get(&url)
        .bearer_auth("ghp_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["message"],
        "Bad credentials"
    );
    let token_scheme = client()
        .get(&url)
        .header("Authorization", format!("token {}", emulator.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(token_scheme.status(), StatusCode::OK);
    let unknown_repo = send_get(&emulator, "/repos/acme/nope/actions/runs").await;
    assert_eq!(unknown_repo.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn injected_faults_answer_5xx_delay_or_drop_then_stop() {
    let emulator = emulator().await;
    let path = "/repos/acme/widgets/actions/runs";
    emulator.add_fault(Fault::on(path, FaultKind::Status(502), Some(1)));
    assert_eq!(
        send_get(&emulator, path).await.status(),
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(send_get(&emulator, path).await.status(), StatusCode::OK);

    emulator.add_fault(Fault::on(path, FaultKind::Drop, Some(1)));
    let dropped = get(&emulator, path).send().await;
    assert!(dropped.is_err(), "{dropped:?}");
    assert_eq!(send_get(&emulator, path).await.status(), StatusCode::OK);

    emulator.add_fault(Fault::on(
        path,
        FaultKind::Latency(Duration::from_millis(300)),
        Some(1),
    ));
    let slow = get(&emulator, path)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(slow.unwrap_err().is_timeout());

    let statuses: Vec<u16> = emulator
        .requests()
        .iter()
        .map(|request| request.status)
        .collect();
    assert_eq!(&statuses[..4], &[502, 200, 0, 200]);
    assert!(
        emulator
            .requests()
            .iter()
            .all(|request| request.token.as_deref() == Some(emulator.token()))
    );
}

#[tokio::test]
async fn deleting_an_unknown_runner_is_404() {
    let emulator = emulator().await;
    let response = client()
        .delete(format!(
            "{}/repos/acme/widgets/actions/runners/999999",
            emulator.url()
        ))
        .bearer_auth(emulator.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_jitconfig_input_is_422_and_a_duplicate_name_409() {
    let emulator = emulator().await;
    let post = |body: Value| post_jitconfig(&emulator, "/repos/acme/widgets", body);
    let missing = post(serde_json::json!({"name": "x", "labels": ["slurm"]})).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        missing.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("runner_group_id")
    );
    assert_eq!(post(jit_body("x")).await.status(), StatusCode::CREATED);
    assert_eq!(post(jit_body("x")).await.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn org_repositories_are_listed_and_org_runners_registered() {
    let emulator = emulator().await;
    emulator.add_repo("acme/gadgets");
    emulator.add_user_repo("someone/else");
    let repos: Value = get_json(&emulator, "/orgs/acme/repos").await;
    let mut names: Vec<&str> = repos
        .as_array()
        .unwrap()
        .iter()
        .map(|repo| repo["full_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["acme/gadgets", "acme/widgets"]);
    assert_eq!(repos[0]["owner"]["type"], "Organization");
    assert_eq!(
        send_get(&emulator, "/orgs/nobody/repos").await.status(),
        404
    );

    let created = post_jitconfig(&emulator, "/orgs/acme", jit_body("org-runner")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let runners: Value = get_json(&emulator, "/orgs/acme/actions/runners").await;
    assert_eq!(runners["total_count"], 1);
    assert_eq!(runners["runners"][0]["labels"][0]["name"], "slurm");
    assert_eq!(runners["runners"][0]["labels"][0]["type"], "custom");
    // The repository's own runner list does not include organisation runners.
    let repo_runners: Value = get_json(&emulator, "/repos/acme/widgets/actions/runners").await;
    assert_eq!(repo_runners["total_count"], 0);
}
