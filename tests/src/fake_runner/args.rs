//! The `fake-runner` command line, validated into a [`FakeRunnerConfig`]
//! without any I/O.
//!
//! The real runner's two ways in are both here: a JIT config
//! (`run.sh --jitconfig`, or `ACTIONS_RUNNER_INPUT_JITCONFIG`), or a
//! registration token with the runner's name and labels (`config.sh`).

use std::time::Duration;

use super::{Credential, FakeRunnerConfig, FakeRunnerError, Secret};

/// Where the real runner takes its JIT config from (`run.sh --jitconfig`).
pub const JITCONFIG_ENV: &str = "ACTIONS_RUNNER_INPUT_JITCONFIG";
/// Where the real runner's `config.sh` takes `--token` from.
pub const TOKEN_ENV: &str = "ACTIONS_RUNNER_INPUT_TOKEN";

/// Stand in for GitHub's actions runner against the GitHub emulator: connect,
/// perform scripted jobs, print what the real runner prints.
#[derive(Debug, clap::Parser)]
#[command(name = "fake-runner", version)]
pub struct FakeRunnerArgs {
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
}

impl FakeRunnerArgs {
    /// Checks the arguments and decodes the JIT config.
    pub fn validate(self) -> Result<FakeRunnerConfig, FakeRunnerError> {
        let credential = match (self.jitconfig, self.url, self.token, self.name) {
            (Some(encoded), _, _, _) => Credential::from_jit_config(&encoded)?,
            (None, Some(server_url), Some(token), Some(name)) => Credential::Registration {
                server_url,
                token: Secret::new(token),
                name,
                labels: self.labels,
                ephemeral: self.ephemeral,
            },
            _ => {
                return Err(FakeRunnerError::Config(
                    "no credential: set ACTIONS_RUNNER_INPUT_JITCONFIG (or --jitconfig), \
                     or pass --url, --token and --name"
                        .into(),
                ));
            }
        };
        let mut config = FakeRunnerConfig::new(credential);
        config.poll_wait = Duration::from_millis(self.poll_wait_ms);
        config.progress_interval = Duration::from_millis(self.progress_interval_ms.max(1));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::fake_runner::EX_USAGE;

    fn parse(args: &[&str]) -> Result<FakeRunnerArgs, clap::Error> {
        FakeRunnerArgs::try_parse_from(std::iter::once("fake-runner").chain(args.iter().copied()))
    }

    #[test]
    fn registration_arguments_make_a_registration_credential() {
        let config = parse(&[
            "--url=http://127.0.0.1:9/_runner",
            "--token=reg",
            "--name=r1",
            "--labels=slurm,gpu",
            "--ephemeral",
            "--progress-interval-ms=20",
        ])
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(
            config.credential,
            Credential::Registration {
                server_url: "http://127.0.0.1:9/_runner".into(),
                token: Secret::new("reg"),
                name: "r1".into(),
                labels: vec!["slurm".into(), "gpu".into()],
                ephemeral: true,
            }
        );
        assert_eq!(config.progress_interval, Duration::from_millis(20));
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
    fn an_undecodable_jit_config_is_a_usage_error_that_does_not_echo_it() {
        let err = parse(&["--jitconfig=bm90IGpzb24="])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(matches!(err, FakeRunnerError::JitConfig(_)), "{err}");
        assert_eq!(err.exit_code(), EX_USAGE);
        assert!(!err.to_string().contains("bm90IGpzb24="), "{err}");
    }

    #[test]
    fn the_secret_does_not_show_in_debug_output() {
        let credential = Credential::Jit {
            server_url: "http://127.0.0.1:9/_runner".into(),
            token: Secret::new("hunter2"),
        };
        assert!(!format!("{credential:?}").contains("hunter2"));
    }
}
