//! Command line of `gha-ctl`, validated into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use gha_proto::v1::JobPhase;
use gha_runtime::ConfigError;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use gha_runtime::telemetry::TelemetryArgs;

/// Look inside a slurm-actions deployment: job records, their history and
/// events, dead letters, lifecycle traces. Reads NATS only.
#[derive(Debug, clap::Parser)]
#[command(name = "gha-ctl", version)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(flatten)]
    pub nats: NatsArgs,

    /// Give up when NATS does not answer within this many seconds.
    #[arg(long, env = "GHA_CTL_TIMEOUT", default_value_t = 5.0, global = true)]
    pub timeout: f64,

    #[command(subcommand)]
    pub command: Command,
}

/// What to show.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Job records of the `gha_jobs` bucket, newest first.
    Jobs {
        /// Only this repository (`owner/name`).
        #[arg(long)]
        repo: Option<String>,
        /// Only this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Only these phases, comma-separated (`queued`, `submitted`,
        /// `launching`, `running`, `done`, `withdrawn`, `unplaceable`,
        /// `failed`).
        #[arg(long, value_delimiter = ',')]
        phase: Vec<String>,
        /// Only records that are not terminal.
        #[arg(long)]
        live: bool,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object per record instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One job: its record, the revisions the bucket keeps, and the events
    /// of every Slurm job it had.
    Job {
        /// The GitHub job id (`workflow_job.id`).
        job_id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Runner lifecycle events from the launchers, oldest first.
    Events {
        /// Only this Slurm job's launcher.
        #[arg(long)]
        slurm_job: Option<u64>,
        /// Only events of the last DURATION (`90s`, `10m`, `2h`, `1d`).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Messages a consumer gave up on, with the reason.
    DeadLetters {
        #[arg(long)]
        json: bool,
    },
    /// A Chrome/Perfetto trace (`traceEvents` JSON) of job lifecycles: one
    /// track per job, one per Slurm node. Open it in ui.perfetto.dev or
    /// chrome://tracing.
    Trace {
        /// Only jobs of these workflow runs (repeatable).
        #[arg(long = "run")]
        runs: Vec<i64>,
        /// Only jobs of this repository.
        #[arg(long)]
        repo: Option<String>,
        /// Only jobs queued in the last DURATION.
        #[arg(long)]
        since: Option<String>,
        /// Where to write the trace.
        #[arg(long, short)]
        output: PathBuf,
    },
}

/// Which records to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub repo: Option<String>,
    pub pool: Option<String>,
    pub phases: Vec<JobPhase>,
    pub live: bool,
    /// Runs to keep; empty: all.
    pub runs: Vec<i64>,
    /// Only jobs queued at or after this time (Unix ms).
    pub since_unix_ms: Option<i64>,
}

/// The validated command.
#[derive(Debug, Clone)]
pub enum Action {
    Jobs {
        filter: Filter,
        limit: Option<usize>,
        json: bool,
    },
    Job {
        job_id: i64,
        json: bool,
    },
    Events {
        slurm_job: Option<u64>,
        since: Option<Duration>,
        json: bool,
    },
    DeadLetters {
        json: bool,
    },
    Trace {
        filter: Filter,
        output: PathBuf,
    },
}

/// Everything a command needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub nats: NatsConfig,
    pub timeout: Duration,
    pub action: Action,
}

impl Cli {
    /// Checks the flags without any I/O.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let nats = self.nats.validate()?;
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(ConfigError(format!(
                "--timeout {}: must be a positive number of seconds",
                self.timeout
            )));
        }
        let now = crate::now_ms();
        let action = match self.command {
            Command::Jobs {
                repo,
                pool,
                phase,
                live,
                limit,
                json,
            } => Action::Jobs {
                filter: Filter {
                    repo,
                    pool,
                    phases: phases(&phase)?,
                    live,
                    ..Filter::default()
                },
                limit,
                json,
            },
            Command::Job { job_id, json } => Action::Job { job_id, json },
            Command::Events {
                slurm_job,
                since,
                json,
            } => Action::Events {
                slurm_job,
                since: since.as_deref().map(duration).transpose()?,
                json,
            },
            Command::DeadLetters { json } => Action::DeadLetters { json },
            Command::Trace {
                runs,
                repo,
                since,
                output,
            } => Action::Trace {
                filter: Filter {
                    repo,
                    runs,
                    since_unix_ms: since
                        .as_deref()
                        .map(duration)
                        .transpose()?
                        .map(|ago| now - ago.as_millis() as i64),
                    ..Filter::default()
                },
                output,
            },
        };
        Ok(Config {
            nats,
            timeout: Duration::from_secs_f64(self.timeout),
            action,
        })
    }
}

/// Phase names as people type them (`running`, `RUNNING`,
/// `JOB_PHASE_RUNNING`).
fn phases(names: &[String]) -> Result<Vec<JobPhase>, ConfigError> {
    names
        .iter()
        .map(|name| {
            let upper = name.trim().to_uppercase();
            let full = if upper.starts_with("JOB_PHASE_") {
                upper
            } else {
                format!("JOB_PHASE_{upper}")
            };
            JobPhase::from_str_name(&full)
                .filter(|phase| *phase != JobPhase::Unspecified)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "--phase {name:?}: not a phase (queued, submitted, launching, running, \
                         done, withdrawn, unplaceable, failed)"
                    ))
                })
        })
        .collect()
}

/// `90s`, `10m`, `2h`, `1d`, or plain seconds.
pub fn duration(text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(number) if scale > 0 && number > 0 => Ok(Duration::from_secs(number * scale)),
        _ => Err(ConfigError(format!(
            "{text:?}: not a duration (e.g. 90s, 10m, 2h, 1d)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Cli::try_parse_from(std::iter::once("gha-ctl").chain(args.iter().copied()))
            .map_err(|err| err.to_string())?
            .validate()
            .map_err(|err| err.to_string())
    }

    #[test]
    fn phases_are_read_in_any_case_and_with_or_without_the_prefix() {
        let config = parse(&["jobs", "--phase", "running,DONE,JOB_PHASE_queued"]).unwrap();
        let Action::Jobs { filter, .. } = config.action else {
            panic!("jobs")
        };
        assert_eq!(
            filter.phases,
            [JobPhase::Running, JobPhase::Done, JobPhase::Queued]
        );
    }

    #[test]
    fn an_unknown_phase_is_refused_naming_the_choices() {
        let err = parse(&["jobs", "--phase", "sleeping"]).unwrap_err();
        assert!(
            err.contains("sleeping") && err.contains("withdrawn"),
            "{err}"
        );
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(duration("45").unwrap(), Duration::from_secs(45));
        for bad in ["", "0m", "5w", "m", "-3s"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_trace_needs_an_output_and_takes_runs() {
        assert!(parse(&["trace"]).is_err());
        let config = parse(&["trace", "--run", "7", "--run", "8", "-o", "t.json"]).unwrap();
        let Action::Trace { filter, output } = config.action else {
            panic!("trace")
        };
        assert_eq!(filter.runs, [7, 8]);
        assert_eq!(output, PathBuf::from("t.json"));
    }

    #[test]
    fn the_timeout_must_be_positive() {
        assert!(parse(&["--timeout", "0", "jobs"]).is_err());
        assert!(parse(&["--timeout", "2.5", "jobs"]).is_ok());
    }
}
