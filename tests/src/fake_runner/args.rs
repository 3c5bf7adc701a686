//! The `fake-runner` command line, validated into what to do without any
//! I/O.
//!
//! The real listener's ways in are here: `Runner.Listener run` with a JIT
//! config (`--jitconfig`, or `ACTIONS_RUNNER_INPUT_JITCONFIG`, which it
//! prefers), with the `.runner` and `.credentials` an earlier configuration
//! left in its root, or (the fake's shortcut for `config.sh` + `run.sh`) a
//! registration token with the runner's name and labels. Every
//! `ACTIONS_RUNNER_INPUT_*` variable is an input the real listener removes
//! from its environment: none reaches a job ([`inherited_environment`]).
//! `install-layout DIR` lays the runner out around this binary.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::worker::JobHooks;
use super::{CredentialSource, FakeRunnerConfig, FakeRunnerError, Secret};

/// Where the real runner takes its JIT config from.
pub const JITCONFIG_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
/// Where the real runner's `config.sh` takes `--token` from.
pub const TOKEN_ENV: &str = "ACTIONS_RUNNER_INPUT_TOKEN";
/// The prefix of every input the real listener takes from its environment
/// and removes from it (`CommandSettings`).
pub const INPUT_ENV_PREFIX: &str = "ACTIONS_RUNNER_INPUT_";
/// The job-started hook script.
pub const HOOK_STARTED_ENV: &str = "ACTIONS_RUNNER_HOOK_JOB_STARTED";
/// The job-completed hook script.
pub const HOOK_COMPLETED_ENV: &str = "ACTIONS_RUNNER_HOOK_JOB_COMPLETED";

/// Stand in for GitHub's actions runner against the GitHub emulator: connect,
/// perform scripted jobs, print what the real runner prints.
#[derive(Debug, clap::Parser)]
#[command(
    name = "Runner.Listener",
    bin_name = "Runner.Listener",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct FakeRunnerArgs {
    #[command(subcommand)]
    pub command: Option<FakeRunnerCommand>,
    /// Without a command: as `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// What the listener is asked to do.
#[derive(Debug, clap::Subcommand)]
pub enum FakeRunnerCommand {
    /// Connect and take jobs (what `run-helper.sh` runs).
    Run(RunArgs),
    /// Lay a runner out at DIR around this binary: `run.sh`,
    /// `run-helper.sh.template`, `safe_sleep.sh`, `bin/Runner.Listener`.
    InstallLayout {
        /// The runner's root directory, created if missing.
        dir: PathBuf,
    },
}

/// The flags of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The encoded JIT config, as `generate-jitconfig` returns it. A
    /// credential: prefer the environment variable, as arguments are visible
    /// to every process on the host.
    #[arg(
        long,
        env = JITCONFIG_ENV,
        hide_env_values = true,
        conflicts_with = "url"
    )]
    pub jitconfig: Option<String>,

    /// Registration instead of a JIT config: the runner protocol's base URL,
    /// `http://HOST:PORT/_runner`.
    #[arg(long, requires_all = ["token", "name"])]
    pub url: Option<String>,

    /// Registration: the registration token.
    #[arg(long, env = TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,

    /// Registration: the runner's name.
    #[arg(long)]
    pub name: Option<String>,

    /// Registration: the runner's labels, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,

    /// Registration: take one job, then exit.
    #[arg(long)]
    pub ephemeral: bool,

    /// How long each idle long poll for a job waits, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub poll_wait_ms: u64,

    /// How often a running job checks whether it was cancelled, in
    /// milliseconds.
    #[arg(long, default_value_t = 200)]
    pub progress_interval_ms: u64,

    /// How long a cancelled job may take to finish (its completed hook
    /// included) before its worker is killed, in milliseconds. The real
    /// listener waits 30 s for its job after SIGTERM.
    #[arg(long, default_value_t = 30_000)]
    pub worker_cancel_timeout_ms: u64,

    /// The job-started hook script.
    #[arg(long, env = HOOK_STARTED_ENV, hide = true)]
    pub hook_job_started: Option<String>,

    /// The job-completed hook script.
    #[arg(long, env = HOOK_COMPLETED_ENV, hide = true)]
    pub hook_job_completed: Option<String>,
}

/// What the binary does, validated.
#[derive(Debug)]
pub enum FakeRunnerAction {
    Run(Box<FakeRunnerConfig>),
    InstallLayout(PathBuf),
}

impl FakeRunnerArgs {
    /// Checks the arguments; `root` is the runner's root directory.
    pub fn validate(self, root: PathBuf) -> Result<FakeRunnerAction, FakeRunnerError> {
        match self.command {
            Some(FakeRunnerCommand::InstallLayout { dir }) => {
                Ok(FakeRunnerAction::InstallLayout(dir))
            }
            Some(FakeRunnerCommand::Run(args)) => {
                Ok(FakeRunnerAction::Run(Box::new(args.validate(root)?)))
            }
            None => Ok(FakeRunnerAction::Run(Box::new(self.run.validate(root)?))),
        }
    }
}

impl RunArgs {
    /// Checks the flags.
    pub fn validate(self, root: PathBuf) -> Result<FakeRunnerConfig, FakeRunnerError> {
        let source = match (self.jitconfig, self.url, self.token, self.name) {
            (Some(encoded), _, _, _) if !encoded.trim().is_empty() => {
                CredentialSource::Jit(Secret::new(encoded))
            }
            (_, Some(server_url), Some(token), Some(name)) => CredentialSource::Registration {
                server_url,
                token: Secret::new(token),
                name,
                labels: self.labels,
                ephemeral: self.ephemeral,
            },
            (_, Some(_), _, _) => {
                return Err(FakeRunnerError::Config(
                    "--url needs --token (or ACTIONS_RUNNER_INPUT_TOKEN) and --name".into(),
                ));
            }
            _ => CredentialSource::Configured,
        };
        let mut config = FakeRunnerConfig::new(root, source);
        config.poll_wait = Duration::from_millis(self.poll_wait_ms);
        config.progress_interval = Duration::from_millis(self.progress_interval_ms.max(1));
        config.worker_cancel_timeout = Duration::from_millis(self.worker_cancel_timeout_ms);
        // An empty variable is no hook, as for the real runner.
        let hook = |path: Option<String>| path.filter(|p| !p.is_empty()).map(PathBuf::from);
        config.hooks = JobHooks {
            started: hook(self.hook_job_started),
            completed: hook(self.hook_job_completed),
        };
        Ok(config)
    }
}

/// The process's environment less every `ACTIONS_RUNNER_INPUT_*` variable:
/// what the listener passes on to jobs.
pub fn inherited_environment() -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(name, _)| {
            !name
                .to_str()
                .is_some_and(|name| name.to_ascii_uppercase().starts_with(INPUT_ENV_PREFIX))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<FakeRunnerArgs, clap::Error> {
        FakeRunnerArgs::try_parse_from(
            std::iter::once("Runner.Listener").chain(args.iter().copied()),
        )
    }

    fn run_config(args: &[&str]) -> FakeRunnerConfig {
        match parse(args).unwrap().validate("/runner".into()).unwrap() {
            FakeRunnerAction::Run(config) => *config,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn registration_arguments_make_a_registration_credential() {
        let config = run_config(&[
            "run",
            "--url=http://127.0.0.1:9/_runner",
            "--token=reg",
            "--name=r1",
            "--labels=slurm,gpu",
            "--ephemeral",
            "--progress-interval-ms=20",
        ]);
        assert_eq!(
            config.source,
            CredentialSource::Registration {
                server_url: "http://127.0.0.1:9/_runner".into(),
                token: Secret::new("reg"),
                name: "r1".into(),
                labels: vec!["slurm".into(), "gpu".into()],
                ephemeral: true,
            }
        );
        assert_eq!(config.progress_interval, Duration::from_millis(20));
        assert_eq!(config.root, std::path::Path::new("/runner"));
    }

    #[test]
    fn run_is_the_default_command_and_takes_the_same_flags() {
        let config = run_config(&["--jitconfig=abc", "--worker-cancel-timeout-ms=50"]);
        assert_eq!(config.source, CredentialSource::Jit(Secret::new("abc")));
        assert_eq!(config.worker_cancel_timeout, Duration::from_millis(50));
        let config = run_config(&["run"]);
        assert_eq!(config.source, CredentialSource::Configured);
    }

    #[test]
    fn hooks_come_from_their_variables_names() {
        let config = run_config(&[
            "run",
            "--hook-job-started=/hooks/start.sh",
            "--hook-job-completed=",
        ]);
        assert_eq!(
            config.hooks,
            JobHooks {
                started: Some("/hooks/start.sh".into()),
                completed: None,
            }
        );
    }

    #[test]
    fn install_layout_names_its_directory() {
        let action = parse(&["install-layout", "/x/runner"])
            .unwrap()
            .validate("/runner".into())
            .unwrap();
        assert!(
            matches!(&action, FakeRunnerAction::InstallLayout(dir) if dir == std::path::Path::new("/x/runner")),
            "{action:?}"
        );
    }

    #[test]
    fn a_url_without_a_token_and_name_is_refused_by_the_parser() {
        assert!(parse(&["--url=http://127.0.0.1:9/_runner"]).is_err());
    }

    #[test]
    fn a_jit_config_and_a_url_together_are_refused() {
        assert!(parse(&["--jitconfig=x", "--url=u", "--token=t", "--name=n"]).is_err());
    }

    #[test]
    fn the_secret_does_not_show_in_debug_output() {
        let source = CredentialSource::Jit(Secret::new("hunter2"));
        assert!(!format!("{source:?}").contains("hunter2"));
    }
}
