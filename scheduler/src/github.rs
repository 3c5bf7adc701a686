//! What the scheduler asks of GitHub, behind the [`GitHubApi`] trait:
//! mint a just-in-time runner registration, find a runner by name, list
//! and delete runners. The adapter speaks REST through `gha-github`'s
//! client (no retries: a POST that failed is looked up, never blindly
//! repeated).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use gha_github::{AppCredentials, Auth, Endpoint, Fetched, GitHubClient, GitHubError};
use secrecy::SecretString;
use serde::Deserialize;

/// Where runners are registered: a repository or an organisation, and
/// the GitHub App installation that reaches it (none with a token).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunnerScope {
    pub target: ScopeTarget,
    /// From the job (`QueuedJob.installation_id`); `None` when the job was
    /// seen with a token.
    pub installation: Option<u64>,
}

/// A repository or an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScopeTarget {
    /// `owner/name`.
    Repo(String),
    Org(String),
}

impl RunnerScope {
    fn prefix(&self) -> String {
        match &self.target {
            ScopeTarget::Repo(repo) => format!("/repos/{repo}/actions/runners"),
            ScopeTarget::Org(org) => format!("/orgs/{org}/actions/runners"),
        }
    }
}

/// A registered runner as GitHub lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Runner {
    pub id: i64,
    pub name: String,
    /// `online` or `offline`.
    pub status: String,
    pub busy: bool,
}

/// A minted registration: the runner and its single-use config.
#[derive(Debug)]
pub struct Minted {
    pub runner: Runner,
    /// `encoded_jit_config`: a credential.
    pub encoded_jit_config: SecretString,
}

/// The runner registration to ask for.
#[derive(Debug, Clone)]
pub struct RunnerRequest {
    pub name: String,
    pub labels: Vec<String>,
    pub runner_group_id: i64,
}

/// The scheduler's view of GitHub.
pub trait GitHubApi: Send + Sync + 'static {
    fn generate_jit_config(
        &self,
        scope: &RunnerScope,
        request: &RunnerRequest,
    ) -> impl Future<Output = Result<Minted, GitHubError>> + Send;

    fn find_runner(
        &self,
        scope: &RunnerScope,
        name: &str,
    ) -> impl Future<Output = Result<Option<Runner>, GitHubError>> + Send;

    /// Every runner of the scope whose name starts with `prefix`.
    fn list_runners(
        &self,
        scope: &RunnerScope,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<Runner>, GitHubError>> + Send;

    fn delete_runner(
        &self,
        scope: &RunnerScope,
        runner_id: i64,
    ) -> impl Future<Output = Result<(), GitHubError>> + Send;
}

/// [`GitHubApi`] over REST: one client (a token, or one fixed App
/// installation), or a client per installation, made when first needed.
#[derive(Debug)]
pub struct RestGitHub {
    clients: Clients,
}

#[derive(Debug)]
enum Clients {
    One(Arc<GitHubClient>),
    PerInstallation {
        endpoint: Endpoint,
        app: Arc<AppCredentials>,
        made: Mutex<HashMap<u64, Arc<GitHubClient>>>,
    },
}

impl RestGitHub {
    /// Every request through `client`.
    pub fn new(client: Arc<GitHubClient>) -> Self {
        Self {
            clients: Clients::One(client),
        }
    }

    /// Each scope through its own installation of `app`.
    pub fn per_installation(endpoint: &Endpoint, app: Arc<AppCredentials>) -> Self {
        Self {
            clients: Clients::PerInstallation {
                endpoint: endpoint.clone(),
                app,
                made: Mutex::new(HashMap::new()),
            },
        }
    }

    fn client(&self, scope: &RunnerScope) -> Result<Arc<GitHubClient>, GitHubError> {
        match &self.clients {
            Clients::One(client) => Ok(client.clone()),
            Clients::PerInstallation {
                endpoint,
                app,
                made,
            } => {
                let installation = scope.installation.ok_or_else(|| GitHubError::NotFound {
                    path: format!(
                        "{} (the job names no GitHub App installation)",
                        scope.prefix()
                    ),
                })?;
                let mut made = made.lock().expect("clients lock");
                Ok(made
                    .entry(installation)
                    .or_insert_with(|| {
                        Arc::new(GitHubClient::with_auth(
                            endpoint,
                            Auth::Installation {
                                app: app.clone(),
                                installation,
                            },
                        ))
                    })
                    .clone())
            }
        }
    }
}

#[derive(Deserialize)]
struct JitAnswer {
    runner: Runner,
    encoded_jit_config: String,
}

#[derive(Deserialize)]
struct RunnerPage {
    runners: Vec<Runner>,
}

impl GitHubApi for RestGitHub {
    async fn generate_jit_config(
        &self,
        scope: &RunnerScope,
        request: &RunnerRequest,
    ) -> Result<Minted, GitHubError> {
        let body = serde_json::json!({
            "name": request.name,
            "runner_group_id": request.runner_group_id,
            "labels": request.labels,
            "work_folder": "_work",
        });
        let answer: JitAnswer = self
            .client(scope)?
            .post(&format!("{}/generate-jitconfig", scope.prefix()), &body)
            .await?;
        Ok(Minted {
            runner: answer.runner,
            encoded_jit_config: SecretString::from(answer.encoded_jit_config),
        })
    }

    async fn find_runner(
        &self,
        scope: &RunnerScope,
        name: &str,
    ) -> Result<Option<Runner>, GitHubError> {
        let path = format!("{}?name={name}&per_page=100", scope.prefix());
        Ok(self
            .page(scope, &path)
            .await?
            .runners
            .into_iter()
            .find(|runner| runner.name == name))
    }

    async fn list_runners(
        &self,
        scope: &RunnerScope,
        prefix: &str,
    ) -> Result<Vec<Runner>, GitHubError> {
        let mut runners = Vec::new();
        let mut path = Some(format!("{}?per_page=100", scope.prefix()));
        while let Some(current) = path {
            let fetched = self
                .client(scope)?
                .get::<RunnerPage>(&current, None)
                .await?;
            path = match fetched {
                Fetched::Fresh { value, next, .. } => {
                    runners.extend(
                        value
                            .runners
                            .into_iter()
                            .filter(|runner| runner.name.starts_with(prefix)),
                    );
                    next
                }
                Fetched::NotModified => None,
            };
        }
        Ok(runners)
    }

    async fn delete_runner(&self, scope: &RunnerScope, runner_id: i64) -> Result<(), GitHubError> {
        self.client(scope)?
            .delete(&format!("{}/{runner_id}", scope.prefix()))
            .await
    }
}

impl RestGitHub {
    async fn page(&self, scope: &RunnerScope, path: &str) -> Result<RunnerPage, GitHubError> {
        match self.client(scope)?.get::<RunnerPage>(path, None).await? {
            Fetched::Fresh { value, .. } => Ok(value),
            Fetched::NotModified => Ok(RunnerPage {
                runners: Vec::new(),
            }),
        }
    }
}
