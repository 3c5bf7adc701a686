//! The scheduler under test: an in-process engine against a real
//! nats-server, the local single-node Slurm and the GitHub emulator, with
//! the test launcher as the batch script's command.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gha_proto::v1::{JobPhase, JobState, JobStatus, JobStatusChange, QueuedJob};
use gha_proto::{Contract, TypedKv};
use gha_scheduler::admission::Admission;
use gha_scheduler::engine::Engine;
use gha_scheduler::github::RestGitHub;
use gha_scheduler::metrics::Metrics;
use gha_scheduler::placement::Policy;
use gha_scheduler::settings::Settings;
use gha_scheduler::slurm::cli::{SlurmCli, SlurmCliConfig};
use gha_testkit::NatsServer;
use gha_testkit::eventually::eventually;
use gha_testkit::github::GitHubEmulator;
use gha_testkit::slurm::Slurm;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

pub type TestEngine = Engine<SlurmCli, RestGitHub, Policy>;

pub const REPO: &str = "org/repo";

/// A policy with one pool on the local `debug` partition.
pub const POLICY: &str = r#"
[defaults]
runtime = "host"
implicit_labels = ["self-hosted", "linux", "x64"]

[[pool]]
name = "test"
labels = ["slurm"]
partition = "debug"
cpus = { default = 1, min = 1, max = 2 }
mem = { default = "64M", min = "16M", max = "1G" }
time_limit = { default = "10m", min = "1m", max = "1h" }
image = "/images/test"
"#;

/// How a test wants its scheduler.
pub struct Options {
    pub policy: String,
    /// `exit`, `hold`, `claim`, `claim-hold`, `wrong-claim` (see the example).
    pub launcher_mode: &'static str,
    /// Replaces `sbatch` (a wrapper that injects faults).
    pub sbatch: Option<PathBuf>,
    pub reconcile_interval: Duration,
    pub max_attempts: u32,
    pub submit_concurrency: usize,
    /// Run the engine in this process; `false`: the tests start the
    /// `gha-scheduler` binary themselves ([`Harness::spawn_binary`]).
    pub in_process: bool,
    pub runner_sweep_every: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy: POLICY.to_owned(),
            launcher_mode: "hold",
            sbatch: None,
            reconcile_interval: Duration::from_millis(500),
            max_attempts: 3,
            submit_concurrency: 16,
            in_process: true,
            runner_sweep_every: 20,
        }
    }
}

/// Path of the test launcher example, built by `cargo test`.
pub fn test_launcher() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let debug = exe.parent().and_then(Path::parent).expect("target/debug");
    debug.join("examples").join("test_launcher")
}

/// A per-test Slurm job name prefix: tests share the one local Slurm.
pub fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t{}x{nanos}", std::process::id())
}

pub struct Harness {
    pub nats: NatsServer,
    pub emulator: GitHubEmulator,
    pub contract: Contract,
    pub kv: TypedKv<JobState>,
    pub reports: tempfile::TempDir,
    pub prefix: String,
    pub slurm: &'static Slurm,
    pub engine: Option<Arc<TestEngine>>,
    pub options: Options,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Harness {
    /// Everything started, the scheduler running.
    pub async fn start(options: Options) -> Harness {
        let slurm = Slurm::shared().expect("local Slurm");
        let nats = NatsServer::start().expect("nats-server");
        let emulator = GitHubEmulator::start_https().await.expect("emulator");
        emulator.add_repo(REPO);
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let contract = Contract::new(client);
        contract.ensure_topology().await.expect("topology");
        let kv = contract.job_states().await.expect("bucket");
        let mut harness = Harness {
            nats,
            emulator,
            contract,
            kv,
            reports: tempfile::tempdir().expect("tempdir"),
            prefix: unique_prefix(),
            slurm,
            engine: None,
            options,
            shutdown: CancellationToken::new(),
            task: None,
        };
        if harness.options.in_process {
            harness.run_scheduler().await;
        }
        harness
    }

    /// Starts the `gha-scheduler run` binary against this harness, with
    /// `failpoint` armed (see `gha_scheduler::failpoint`); its stderr goes
    /// to `<reports>/scheduler-<n>.log`.
    pub fn spawn_binary(&self, failpoint: Option<&str>) -> SchedulerProcess {
        let token = self.reports.path().join("github-token");
        std::fs::write(&token, self.emulator.token()).unwrap();
        let auth = vec![
            "--github-token-file".to_owned(),
            token.display().to_string(),
        ];
        self.spawn_binary_with(failpoint, &auth)
    }

    /// [`Harness::spawn_binary`] with these GitHub credential flags.
    pub fn spawn_binary_with(&self, failpoint: Option<&str>, auth: &[String]) -> SchedulerProcess {
        let dir = self.reports.path();
        let policy = dir.join("policy.toml");
        std::fs::write(&policy, &self.options.policy).unwrap();
        let runs = std::fs::read_dir(dir)
            .unwrap()
            .filter(|entry| {
                entry.as_ref().is_ok_and(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with("scheduler-")
                })
            })
            .count();
        let log = std::fs::File::create(dir.join(format!("scheduler-{runs}.log"))).unwrap();
        let settings = self.settings();
        let job_env: Vec<String> = settings
            .job_env
            .iter()
            .filter(|(name, _)| name != "GHA_NATS_URL")
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gha-scheduler"));
        command
            .args(["--log", "info,gha_scheduler=debug", "run"])
            .args(["--nats-url", &self.nats.url()])
            .arg("--policy")
            .arg(&policy)
            .args(["--github-api-url", &self.emulator.url()])
            .arg("--github-ca-file")
            .arg(self.emulator.ca().cert_file())
            .args(auth)
            .args(["--cluster", &self.prefix, "--name-prefix", &self.prefix])
            .args(["--launcher-command", &settings.launcher_command])
            .args(["--job-env", &job_env.join(",")])
            .args(["--reconcile-interval", "0.5"])
            .args(["--max-attempts", &self.options.max_attempts.to_string()])
            .env("SLURM_CONF", self.slurm.conf())
            .env_remove("GHA_SCHEDULER_FAILPOINT")
            .stdout(std::process::Stdio::null())
            .stderr(log);
        if let Some(sbatch) = &self.options.sbatch {
            command.arg("--sbatch").arg(sbatch);
        }
        if let Some(point) = failpoint {
            command.env("GHA_SCHEDULER_FAILPOINT", point);
        }
        SchedulerProcess(command.spawn().expect("gha-scheduler starts"))
    }

    /// Everything the scheduler binaries of this test logged.
    pub fn binary_logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.reports.path()).unwrap() {
            let entry = entry.unwrap();
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("scheduler-")
            {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    pub fn settings(&self) -> Settings {
        Settings {
            name_prefix: self.prefix.clone(),
            cluster: self.prefix.clone(),
            max_attempts: self.options.max_attempts,
            signal_grace_seconds: 10,
            launcher_command: test_launcher().display().to_string(),
            job_env: vec![
                ("GHA_NATS_URL".into(), self.nats.url()),
                (
                    "GHA_TEST_REPORT_DIR".into(),
                    self.reports.path().display().to_string(),
                ),
                (
                    "GHA_TEST_LAUNCHER_MODE".into(),
                    self.options.launcher_mode.into(),
                ),
            ],
            submit_concurrency: self.options.submit_concurrency,
            reconcile_interval: self.options.reconcile_interval,
            runner_sweep_every: self.options.runner_sweep_every,
            ..Settings::default()
        }
    }

    pub fn batch(&self) -> SlurmCli {
        let mut config = SlurmCliConfig {
            env: vec![("SLURM_CONF".into(), self.slurm.conf().display().to_string())],
            ..SlurmCliConfig::default()
        };
        if let Some(sbatch) = &self.options.sbatch {
            config.sbatch = sbatch.clone();
        }
        SlurmCli::new(config)
    }

    /// A scheduler with job 1 submitted and its launcher started (and, by
    /// the launcher mode, claimed): the harness, the record as it was once
    /// submitted, and the launcher's report.
    pub async fn one_job_launched(options: Options) -> (Harness, JobState, serde_json::Value) {
        let harness = Harness::start(options).await;
        harness.publish(&harness.job(1)).await;
        let submitted = harness.wait_submitted(1).await;
        let report = harness.wait_report(submitted.slurm_job_id).await;
        (harness, submitted, report)
    }

    /// Starts (or restarts) the in-process scheduler.
    pub async fn run_scheduler(&mut self) {
        let policy = Policy::from_toml("test-policy.toml", &self.options.policy).expect("policy");
        let admission = Admission::new(policy.limits.clone());
        let github = gha_github::GitHubClient::new(
            &github_endpoint(&self.emulator),
            SecretString::from(self.emulator.token().to_owned()),
        );
        let engine = Engine::new(
            self.kv.clone(),
            self.batch(),
            RestGitHub::new(Arc::new(github)),
            policy,
            self.settings(),
            admission,
            Metrics::default(),
        );
        self.shutdown = CancellationToken::new();
        let task = tokio::spawn(gha_scheduler::service::serve(
            engine.clone(),
            self.contract.clone(),
            self.shutdown.clone(),
        ));
        self.engine = Some(engine);
        self.task = Some(task);
    }

    /// Stops the in-process scheduler (as a shutdown, not a crash).
    pub async fn stop_scheduler(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("scheduler ended cleanly");
        }
        self.engine = None;
    }

    pub fn job(&self, job_id: i64) -> QueuedJob {
        self.job_in(REPO, job_id)
    }

    /// A job of repository `repo` (`owner/name`), created at `job_id` ms.
    pub fn job_in(&self, repo: &str, job_id: i64) -> QueuedJob {
        QueuedJob {
            job_id,
            run_id: 1000 + job_id,
            run_attempt: 1,
            repository: repo.into(),
            owner: repo.split('/').next().unwrap().into(),
            labels: vec!["self-hosted".into(), "slurm".into()],
            created_at_unix_ms: job_id,
            ..QueuedJob::default()
        }
    }

    pub async fn publish(&self, job: &QueuedJob) {
        self.contract.publish(job).await.expect("publish");
    }

    /// Publishes without `Nats-Msg-Id`: JetStream stores it again.
    pub async fn publish_raw(&self, job: &QueuedJob) {
        use prost::Message as _;
        self.contract
            .jetstream()
            .publish(
                gha_proto::subjects::JOBS_QUEUED.to_string(),
                job.encode_to_vec().into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stored");
    }

    pub async fn publish_status(&self, job_id: i64, status: JobStatus) {
        let change = JobStatusChange {
            job_id,
            run_id: 1000 + job_id,
            run_attempt: 1,
            repository: REPO.into(),
            status: status as i32,
            ..JobStatusChange::default()
        };
        self.contract.publish(&change).await.expect("publish");
    }

    pub async fn state(&self, job_id: i64) -> Option<JobState> {
        self.kv
            .get(&job_id.to_string())
            .await
            .expect("kv get")
            .map(|entry| entry.value)
    }

    /// Waits until the record satisfies `check`.
    pub async fn wait_for(
        &self,
        job_id: i64,
        what: &str,
        check: impl Fn(&JobState) -> bool,
    ) -> JobState {
        let result = eventually(what, Duration::from_secs(30), || async {
            self.state(job_id).await.filter(|state| check(state))
        })
        .await;
        match result {
            Ok(state) => state,
            Err(err) => panic!(
                "job {job_id}: {err}; record: {:?}",
                self.state(job_id).await
            ),
        }
    }

    /// Waits until one of `candidates` not in `seen` reaches `phase`.
    pub async fn wait_for_any<const N: usize>(
        &self,
        candidates: [i64; N],
        seen: &[i64],
        phase: JobPhase,
    ) -> i64 {
        eventually(
            "a candidate reaches the phase",
            Duration::from_secs(30),
            || async {
                for job_id in candidates {
                    if seen.contains(&job_id) {
                        continue;
                    }
                    if self
                        .state(job_id)
                        .await
                        .is_some_and(|state| state.phase() == phase)
                    {
                        return Some(job_id);
                    }
                }
                None
            },
        )
        .await
        .expect("one of them")
    }

    /// Waits until the job has a Slurm job (Submitted, or already further:
    /// a launcher may claim within a second).
    pub async fn wait_submitted(&self, job_id: i64) -> JobState {
        self.wait_for(job_id, "a Slurm job", |state| {
            state.slurm_job_id != 0
                && matches!(
                    state.phase(),
                    JobPhase::Submitted | JobPhase::Launching | JobPhase::Running
                )
        })
        .await
    }

    pub async fn wait_phase(&self, job_id: i64, phase: JobPhase) -> JobState {
        self.wait_for(job_id, &format!("phase {phase:?}"), |state| {
            state.phase() == phase
        })
        .await
    }

    /// Our Slurm jobs (any state Slurm still knows): (id, name, state).
    pub fn slurm_jobs(&self) -> Vec<(u64, String, String)> {
        let output = self
            .slurm
            .command("squeue")
            .args(["-h", "-t", "all", "-o", "%i|%j|%T"])
            .output()
            .expect("squeue");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let mut parts = line.trim().split('|');
                let id = parts.next()?.parse().ok()?;
                let name = parts.next()?.to_owned();
                let state = parts.next()?.to_owned();
                name.starts_with(&format!("{}-", self.prefix))
                    .then_some((id, name, state))
            })
            .collect()
    }

    /// Slurm jobs of ours for `job_id`.
    pub fn slurm_jobs_for(&self, job_id: i64) -> Vec<(u64, String, String)> {
        let stem = format!("{}-{job_id}-", self.prefix);
        self.slurm_jobs()
            .into_iter()
            .filter(|(_, name, _)| name.starts_with(&stem))
            .collect()
    }

    /// What the test launcher of a Slurm job reported, once it has.
    pub fn report(&self, slurm_job_id: u64) -> Option<serde_json::Value> {
        let path = self.reports.path().join(format!("{slurm_job_id}.json"));
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub async fn wait_report(&self, slurm_job_id: u64) -> serde_json::Value {
        eventually("launcher report", Duration::from_secs(30), || async {
            self.report(slurm_job_id)
        })
        .await
        .expect("the launcher reported")
    }
}

/// A `gha-scheduler` process, killed when dropped (a failing test must not
/// leave it running).
pub struct SchedulerProcess(pub std::process::Child);

impl SchedulerProcess {
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.0.kill()
    }

    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }

    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }
}

impl Drop for SchedulerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let ids: Vec<String> = self
            .slurm_jobs()
            .into_iter()
            .map(|(id, _, _)| id.to_string())
            .collect();
        if !ids.is_empty() {
            let _ = self.slurm.command("scancel").args(&ids).status();
        }
    }
}

/// The emulator's API over HTTPS, trusting its CA.
pub fn github_endpoint(emulator: &GitHubEmulator) -> gha_github::Endpoint {
    let roots = gha_github::TlsRoots::with_ca_pem(emulator.ca().cert_pem().as_bytes())
        .expect("the emulator's CA");
    gha_github::Endpoint::new(&emulator.url(), &roots).expect("TLS client")
}
