//! GitHub App authentication and webhook deliveries, over real HTTP.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use gha_testkit::eventually;
use gha_testkit::github::{DeliveryFault, GitHubEmulator, JobSpec, WorkflowSpec, signature_256};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const APP_ID: u64 = 31337;
const PRIVATE_KEY: &[u8] = include_bytes!("../fixtures/github-app-test-key.pem");
const PUBLIC_KEY: &[u8] = include_bytes!("../fixtures/github-app-test-key.pub.pem");

fn app_jwt(issued_ago: i64, lifetime: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now - issued_ago, "exp": now - issued_ago + lifetime, "iss": APP_ID.to_string()});
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(PRIVATE_KEY).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn an_app_jwt_buys_an_installation_token_that_sees_only_its_repositories() {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo("acme/widgets");
    emulator.add_repo("acme/secret");
    emulator.register_app(APP_ID, PUBLIC_KEY).unwrap();
    let installation = emulator.add_installation(APP_ID, "acme", &["acme/widgets"]);
    let client = reqwest::Client::new();

    let response = client
        .post(format!(
            "{}/app/installations/{installation}/access_tokens",
            emulator.url()
        ))
        .bearer_auth(app_jwt(30, 540))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ghs_"));
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires > chrono::Utc::now() + chrono::Duration::minutes(50));

    let repos: Value = client
        .get(format!("{}/installation/repositories", emulator.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(repos["total_count"], 1);
    assert_eq!(repos["repositories"][0]["full_name"], "acme/widgets");

    let hidden = client
        .get(format!("{}/repos/acme/secret/actions/runs", emulator.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    // The JWT itself cannot read repositories.
    let jwt_read = client
        .get(format!(
            "{}/repos/acme/widgets/actions/runs",
            emulator.url()
        ))
        .bearer_auth(app_jwt(0, 60))
        .send()
        .await
        .unwrap();
    assert_eq!(jwt_read.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_too_long_or_foreign_jwts_are_refused() {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo("acme/widgets");
    emulator.register_app(APP_ID, PUBLIC_KEY).unwrap();
    let installation = emulator.add_installation(APP_ID, "acme", &["acme/widgets"]);
    let client = reqwest::Client::new();
    let url = format!(
        "{}/app/installations/{installation}/access_tokens",
        emulator.url()
    );
    for (jwt, why) in [
        (app_jwt(700, 600), "expired"),
        (app_jwt(0, 3600), "longer than ten minutes"),
        ("a.b.c".to_string(), "garbage"),
    ] {
        let response = client.post(&url).bearer_auth(&jwt).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
    }
    let other = client
        .post(format!(
            "{}/app/installations/1/access_tokens",
            emulator.url()
        ))
        .bearer_auth(app_jwt(0, 60))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

/// A webhook receiver that records each delivery's headers and body.
async fn receiver() -> (String, Arc<Mutex<Vec<(HeaderMap, String)>>>) {
    let received: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let log = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn wait_for(received: &Arc<Mutex<Vec<(HeaderMap, String)>>>, count: usize) {
    eventually("webhook deliveries", Duration::from_secs(10), || async {
        (received.lock().unwrap().len() >= count).then_some(())
    })
    .await
    .unwrap();
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn deliveries_are_signed_and_carry_githubs_headers_and_payload() {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo("acme/widgets");
    let (url, received) = receiver().await;
    emulator.set_webhook(&url, Some("It's a Secret to Everybody"));
    emulator
        .create_run(
            "acme/widgets",
            WorkflowSpec::new("CI", vec![JobSpec::new("build", &["self-hosted", "slurm"])]),
        )
        .unwrap();
    wait_for(&received, 1).await;

    let (headers, body) = received.lock().unwrap()[0].clone();
    assert_eq!(header(&headers, "x-github-event"), "workflow_job");
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert!(header(&headers, "user-agent").starts_with("GitHub-Hookshot/"));
    assert!(!header(&headers, "x-github-delivery").is_empty());
    assert_eq!(
        header(&headers, "x-hub-signature-256"),
        signature_256(b"It's a Secret to Everybody", body.as_bytes())
    );
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["action"], "queued");
    let job = &payload["workflow_job"];
    assert_eq!(job["status"], "queued");
    assert_eq!(job["labels"], json!(["self-hosted", "slurm"]));
    assert_eq!(job["run_attempt"], 1);
    assert!(job["runner_id"].is_null() && job["runner_name"].is_null());
    assert!(job["conclusion"].is_null());
    assert_eq!(payload["repository"]["full_name"], "acme/widgets");
    assert_eq!(payload["organization"]["login"], "acme");
}

#[tokio::test]
async fn delivery_faults_drop_duplicate_and_reorder_and_redelivery_keeps_the_id() {
    let emulator = GitHubEmulator::start().await.unwrap();
    emulator.add_repo("acme/widgets");
    let (url, received) = receiver().await;
    emulator.set_webhook(&url, None);
    emulator.inject_delivery_fault(DeliveryFault::Drop);
    emulator.inject_delivery_fault(DeliveryFault::Duplicate);
    emulator.inject_delivery_fault(DeliveryFault::Reorder);
    emulator
        .create_run(
            "acme/widgets",
            WorkflowSpec::fan_out("m", 4, &["slurm"], vec![]),
        )
        .unwrap();
    // 4 queued events: the 1st dropped, the 2nd twice, the 3rd after the 4th.
    wait_for(&received, 4).await;
    let names: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| {
            let payload: Value = serde_json::from_str(body).unwrap();
            payload["workflow_job"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["m-2", "m-2", "m-4", "m-3"]);
    assert!(
        received.lock().unwrap()[0]
            .0
            .get("x-hub-signature-256")
            .is_none()
    );

    let dropped = emulator
        .deliveries()
        .into_iter()
        .find(|d| d.dropped)
        .unwrap();
    assert!(dropped.attempts.is_empty());
    assert!(emulator.redeliver(&dropped.id));
    wait_for(&received, 5).await;
    let (headers, body) = received.lock().unwrap()[4].clone();
    assert_eq!(header(&headers, "x-github-delivery"), dropped.id);
    assert_eq!(body, dropped.body);
}
