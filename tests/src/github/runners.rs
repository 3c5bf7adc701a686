//! The world's runner rules: JIT and token registration, sessions, job
//! assignment by labels, completion, removal.

use super::model::{Conclusion, JobStatus, Runner, Scope, Timestamp};
use super::runner_api::{
    AssignedJob, CredentialsData, CredentialsFile, JitConfig, JobResult, RunnerFile, SessionInfo,
    SessionRequest,
};
use super::world::{ApiError, World};

/// What `generate-jitconfig` takes.
#[derive(Debug, Clone)]
pub struct JitRequest {
    pub name: String,
    pub runner_group_id: u64,
    pub labels: Vec<String>,
    pub work_folder: String,
}

/// Labels the real runner adds when configured with a registration token.
const DEFAULT_LABELS: [&str; 3] = ["self-hosted", "Linux", "X64"];

fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn plus(now: Timestamp, duration: std::time::Duration) -> Timestamp {
    now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

impl World {
    /// Where runners talk the runner protocol: plain HTTP on the API's
    /// port even when the API is served over HTTPS (the emulator answers
    /// both on one port), so a fake runner needs no CA.
    fn runner_base_url(&self) -> String {
        self.base_url.replacen("https://", "http://", 1)
    }

    fn check_scope(&self, scope: &Scope) -> Result<(), ApiError> {
        let exists = match scope {
            Scope::Repo(repo) => self.repos.contains_key(repo),
            Scope::Org(org) => self.repos.values().any(|repo| &repo.owner == org),
        };
        exists.then_some(()).ok_or_else(ApiError::not_found)
    }

    fn html_url_of(&self, scope: &Scope) -> String {
        match scope {
            Scope::Repo(repo) => format!("{}/_html/{repo}", self.base_url),
            Scope::Org(org) => format!("{}/_html/{org}", self.base_url),
        }
    }

    fn new_runner(
        &mut self,
        scope: Scope,
        name: &str,
        labels: Vec<String>,
        group_id: u64,
        ephemeral: bool,
        now: Timestamp,
    ) -> Result<u64, ApiError> {
        if name.is_empty() || name.len() > 64 {
            return Err(ApiError::invalid("name must be 1 to 64 characters"));
        }
        if self
            .runners
            .values()
            .any(|runner| runner.scope == scope && runner.name == name)
        {
            return Err(ApiError::new(
                409,
                format!("Already exists - A runner with the name {name} already exists."),
            ));
        }
        self.next_runner_id += 1;
        let id = self.next_runner_id;
        self.runners.insert(
            id,
            Runner {
                id,
                name: name.into(),
                scope,
                labels,
                group_id,
                ephemeral,
                created_at: now,
                jit: None,
                session: None,
                job: None,
                jobs_done: 0,
            },
        );
        Ok(id)
    }

    /// `POST .../actions/runners/generate-jitconfig`: an offline ephemeral
    /// runner and its single-use `encoded_jit_config`.
    pub fn generate_jit_config(
        &mut self,
        scope: Scope,
        request: JitRequest,
        now: Timestamp,
    ) -> Result<(u64, String), ApiError> {
        self.check_scope(&scope)?;
        if request.labels.is_empty() || request.labels.len() > 100 {
            return Err(ApiError::invalid("labels must have 1 to 100 items"));
        }
        if request
            .labels
            .iter()
            .any(|label| label.trim().is_empty() || label.len() > 256)
        {
            return Err(ApiError::invalid("labels must be 1 to 256 characters"));
        }
        if !self.runner_groups.contains_key(&request.runner_group_id) {
            return Err(ApiError::not_found());
        }
        let id = self.new_runner(
            scope.clone(),
            &request.name,
            request.labels,
            request.runner_group_id,
            true,
            now,
        )?;
        let secret = random_secret();
        let expires = plus(now, self.settings.jit_ttl);
        self.runners.get_mut(&id).expect("runner exists").jit = Some((secret.clone(), expires));
        let config = JitConfig {
            runner: RunnerFile {
                agent_id: id,
                agent_name: request.name,
                pool_id: request.runner_group_id,
                pool_name: self.runner_groups[&request.runner_group_id].clone(),
                server_url: format!("{}/_runner", self.runner_base_url()),
                git_hub_url: self.html_url_of(&scope),
                work_folder: request.work_folder,
                ephemeral: true,
                disable_update: true,
            },
            credentials: CredentialsFile {
                scheme: "OAuthAccessToken".into(),
                data: CredentialsData {
                    client_id: uuid::Uuid::new_v4().to_string(),
                    authorization_url: format!("{}/_runner/token", self.runner_base_url()),
                    token: secret,
                },
            },
        };
        Ok((id, config.encode()))
    }

    /// `POST .../actions/runners/registration-token` (and `remove-token`):
    /// a token and its expiry.
    pub fn registration_token(
        &mut self,
        scope: Scope,
        now: Timestamp,
    ) -> Result<(String, Timestamp), ApiError> {
        self.check_scope(&scope)?;
        let token = format!("A{}", &random_secret()[..28].to_ascii_uppercase());
        let expires = plus(now, self.settings.token_ttl);
        self.registration_tokens
            .insert(token.clone(), (scope, expires));
        Ok((token, expires))
    }

    /// A runner connects: it is online from now on.
    pub fn open_session(
        &mut self,
        request: SessionRequest,
        now: Timestamp,
    ) -> Result<SessionInfo, ApiError> {
        let runner_id = match request {
            SessionRequest::Jit { jit_token } => {
                if self.used_jit_secrets.contains(&jit_token) {
                    return Err(ApiError::new(401, "JIT config already used"));
                }
                let (id, expires) = self
                    .runners
                    .values()
                    .find_map(|runner| match &runner.jit {
                        Some((secret, expires)) if *secret == jit_token => {
                            Some((runner.id, *expires))
                        }
                        _ => None,
                    })
                    .ok_or_else(|| ApiError::new(401, "Bad credentials"))?;
                if expires <= now {
                    return Err(ApiError::new(401, "JIT config expired"));
                }
                self.used_jit_secrets.insert(jit_token);
                self.runners.get_mut(&id).expect("runner exists").jit = None;
                id
            }
            SessionRequest::Registration {
                registration_token,
                name,
                labels,
                ephemeral,
            } => {
                let (scope, expires) = self
                    .registration_tokens
                    .get(&registration_token)
                    .cloned()
                    .ok_or_else(|| ApiError::new(401, "Bad credentials"))?;
                if expires <= now {
                    return Err(ApiError::new(401, "registration token expired"));
                }
                let mut all_labels: Vec<String> = DEFAULT_LABELS
                    .iter()
                    .map(|label| label.to_string())
                    .collect();
                all_labels.extend(labels);
                self.new_runner(scope, &name, all_labels, 1, ephemeral, now)?
            }
        };
        let session_id = uuid::Uuid::new_v4().to_string();
        let runner = self.runners.get_mut(&runner_id).expect("runner exists");
        runner.session = Some((session_id.clone(), now));
        self.sessions.insert(session_id.clone(), runner_id);
        Ok(SessionInfo {
            session_id,
            runner_id,
            runner_name: runner.name.clone(),
            ephemeral: runner.ephemeral,
        })
    }

    fn session_runner(&mut self, session_id: &str, now: Timestamp) -> Result<u64, ApiError> {
        let id = *self
            .sessions
            .get(session_id)
            .ok_or_else(|| ApiError::new(404, "session not found (runner removed or offline)"))?;
        let runner = self
            .runners
            .get_mut(&id)
            .ok_or_else(|| ApiError::new(404, "runner removed"))?;
        runner.session = Some((session_id.to_string(), now));
        Ok(id)
    }

    fn serves(runner: &Runner, repo: &str, owner: &str, labels: &[String]) -> bool {
        let in_scope = match &runner.scope {
            Scope::Repo(scoped) => scoped == repo,
            Scope::Org(org) => org == owner,
        };
        in_scope
            && labels.iter().all(|label| {
                runner
                    .labels
                    .iter()
                    .any(|have| have.eq_ignore_ascii_case(label))
            })
    }

    /// The runner's job: the one it has, or the oldest queued job whose
    /// labels it all has, which goes `in_progress` now.
    pub fn next_job(
        &mut self,
        session_id: &str,
        now: Timestamp,
    ) -> Result<Option<AssignedJob>, ApiError> {
        let runner_id = self.session_runner(session_id, now)?;
        let runner = &self.runners[&runner_id];
        if let Some(job_id) = runner.job {
            return Ok(Some(self.assigned(job_id)));
        }
        if runner.ephemeral && runner.jobs_done > 0 {
            return Ok(None);
        }
        let candidate = self
            .jobs
            .values()
            .filter(|job| job.status == JobStatus::Queued)
            .filter(|job| {
                let repo = &self.runs[&job.run_id].repo;
                let owner = &self.repos[repo].owner;
                Self::serves(runner, repo, owner, &job.spec.labels)
            })
            .min_by_key(|job| (job.created_at, job.id))
            .map(|job| job.id);
        let Some(job_id) = candidate else {
            return Ok(None);
        };
        let name = runner.name.clone();
        let job = self.jobs.get_mut(&job_id).expect("job exists");
        job.status = JobStatus::InProgress;
        job.started_at = Some(now);
        job.runner = Some((runner_id, name));
        self.runners.get_mut(&runner_id).expect("runner exists").job = Some(job_id);
        self.touch_run(job_id, now);
        self.emit("in_progress", job_id);
        Ok(Some(self.assigned(job_id)))
    }

    fn assigned(&self, job_id: u64) -> AssignedJob {
        let job = &self.jobs[&job_id];
        let run = &self.runs[&job.run_id];
        AssignedJob {
            job_id,
            run_id: job.run_id,
            run_attempt: job.attempt,
            name: job.spec.name.clone(),
            job_key: job.spec.job_key().to_owned(),
            workflow: run.spec.name.clone(),
            repository: run.repo.clone(),
            steps: job.spec.steps.clone(),
        }
    }

    /// Whether the runner should stop its job (the run was cancelled).
    pub fn job_control(
        &mut self,
        session_id: &str,
        job_id: u64,
        now: Timestamp,
    ) -> Result<bool, ApiError> {
        let runner_id = self.session_runner(session_id, now)?;
        if self.runners[&runner_id].job != Some(job_id) {
            return Err(ApiError::new(404, "job not assigned to this runner"));
        }
        Ok(self.jobs[&job_id].cancel_requested)
    }

    /// The runner reports its job's result. An ephemeral runner is removed.
    pub fn complete_job(
        &mut self,
        session_id: &str,
        job_id: u64,
        result: JobResult,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let runner_id = self.session_runner(session_id, now)?;
        if self.runners[&runner_id].job != Some(job_id) {
            return Err(ApiError::new(404, "job not assigned to this runner"));
        }
        let conclusion = match result {
            JobResult::Succeeded => Conclusion::Success,
            JobResult::Failed => Conclusion::Failure,
            JobResult::Cancelled => Conclusion::Cancelled,
        };
        let runner = self.runners.get_mut(&runner_id).expect("runner exists");
        runner.job = None;
        runner.jobs_done += 1;
        if runner.ephemeral {
            self.runners.remove(&runner_id);
        }
        self.finish_job(job_id, conclusion, now);
        Ok(())
    }

    /// The runner disconnects: offline (idempotent).
    pub fn close_session(&mut self, session_id: &str) {
        if let Some(runner_id) = self.sessions.remove(session_id)
            && let Some(runner) = self.runners.get_mut(&runner_id)
        {
            runner.session = None;
        }
    }

    /// `DELETE .../actions/runners/{id}`: 422 while it runs a job.
    pub fn delete_runner(&mut self, scope: &Scope, runner_id: u64) -> Result<(), ApiError> {
        let runner = self
            .runners
            .get(&runner_id)
            .filter(|runner| &runner.scope == scope)
            .ok_or_else(ApiError::not_found)?;
        if runner.job.is_some() {
            return Err(ApiError::invalid(format!(
                "Bad request - Runner \"{}\" is still running a job\"",
                runner.name
            )));
        }
        self.sessions.retain(|_, id| *id != runner_id);
        self.runners.remove(&runner_id);
        Ok(())
    }

    /// Runners registered at `scope`, by id.
    pub fn runners_of(&self, scope: &Scope) -> Vec<&Runner> {
        self.runners
            .values()
            .filter(|runner| &runner.scope == scope)
            .collect()
    }

    /// Whether the runner is connected and heard from recently.
    pub fn is_online(&self, runner: &Runner, now: Timestamp) -> bool {
        let timeout = chrono::Duration::from_std(self.settings.session_timeout)
            .unwrap_or(chrono::Duration::MAX);
        matches!(&runner.session, Some((_, seen)) if *seen + timeout > now)
    }

    /// Runners silent past the session timeout go offline; a job they were
    /// running fails, as when GitHub loses a runner.
    pub(super) fn expire_sessions(&mut self, now: Timestamp) {
        let lost: Vec<u64> = self
            .runners
            .values()
            .filter(|runner| runner.session.is_some() && !self.is_online(runner, now))
            .map(|runner| runner.id)
            .collect();
        for runner_id in lost {
            let runner = self.runners.get_mut(&runner_id).expect("runner exists");
            if let Some((session, _)) = runner.session.take() {
                self.sessions.remove(&session);
            }
            if let Some(job_id) = runner.job.take() {
                let conclusion = if self.jobs[&job_id].cancel_requested {
                    Conclusion::Cancelled
                } else {
                    Conclusion::Failure
                };
                if self.runners[&runner_id].ephemeral {
                    self.runners.remove(&runner_id);
                }
                self.finish_job(job_id, conclusion, now);
            }
        }
    }
}
