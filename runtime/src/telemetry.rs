//! Logging: one `init` per process, filtered like `RUST_LOG`, as text for
//! people or JSON for log pipelines.
//!
//! Text is coloured only when stderr is a terminal and `NO_COLOR` is unset
//! or empty (<https://no-color.org>): journald, CI logs and files written
//! through a pipe get plain lines, not ANSI escape codes.

use std::ffi::OsString;
use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging flags every binary takes.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log line format.
    #[arg(long, env = "GHA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `RUST_LOG` syntax, e.g. `info,gha_scheduler=debug`.
    /// `RUST_LOG` is used when this is unset; the default is `info`.
    #[arg(long, env = "GHA_LOG", global = true)]
    pub log: Option<String>,
}

/// The filter from `--log`, else `RUST_LOG`, else `info`.
pub fn filter(args: &TelemetryArgs) -> EnvFilter {
    let directives = args
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    EnvFilter::try_new(&directives).unwrap_or_else(|err| {
        eprintln!("warning: ignoring log filter {directives:?}: {err}; using `info`");
        EnvFilter::new("info")
    })
}

/// Whether text logs get ANSI colours: only on a terminal, and never when
/// `NO_COLOR` holds a non-empty value.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// Installs the global subscriber, writing to stderr. Call once, first thing
/// in `main`.
pub fn init(args: &TelemetryArgs) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(args))
        .with_writer(std::io::stderr);
    let result = match args.log_format {
        LogFormat::Text => builder
            .with_ansi(use_colour(
                std::io::stderr().is_terminal(),
                std::env::var_os("NO_COLOR"),
            ))
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("warning: logging already initialised: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None));
    }

    #[test]
    fn no_color_turns_colour_off_unless_empty() {
        assert!(!use_colour(true, Some("1".into())));
        assert!(!use_colour(true, Some("yes".into())));
        assert!(use_colour(true, Some("".into())), "empty means unset");
        assert!(!use_colour(false, Some("".into())));
    }
}
