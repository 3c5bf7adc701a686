//! How a binary's outcome becomes its exit code.
//!
//! `sysexits.h` codes, so scripts and systemd can tell a bad configuration
//! (fix the flags, do not restart) from a failure (restart may help).

use std::process::ExitCode;

/// The command line or configuration is wrong (`EX_USAGE`).
pub const EX_USAGE: u8 = 64;
/// The requested function is not there (`EX_UNAVAILABLE`).
pub const EX_UNAVAILABLE: u8 = 69;
/// Anything else.
pub const EX_FAILURE: u8 = 1;

/// Bad configuration, found before any I/O.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// A subcommand this build does not implement yet: it says so instead of
/// pretending to work.
#[derive(Debug, thiserror::Error)]
#[error("{command}: not implemented yet ({tracking})")]
pub struct Unimplemented {
    /// e.g. `gha-poller poll-once`.
    pub command: &'static str,
    /// Where the work is tracked, e.g. `issue 4`.
    pub tracking: &'static str,
}

/// The exit code for `result`, after printing the error (with its causes)
/// to stderr.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {err:#}");
    let code = if err.downcast_ref::<ConfigError>().is_some() {
        EX_USAGE
    } else if err.downcast_ref::<Unimplemented>().is_some() {
        EX_UNAVAILABLE
    } else {
        EX_FAILURE
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_kind_has_its_code() {
        assert_eq!(exit_code(Ok(())), ExitCode::SUCCESS);
        assert_eq!(
            exit_code(Err(ConfigError("x".into()).into())),
            ExitCode::from(EX_USAGE)
        );
        let unimplemented = Unimplemented {
            command: "gha-x run",
            tracking: "issue 9",
        };
        assert_eq!(
            unimplemented.to_string(),
            "gha-x run: not implemented yet (issue 9)"
        );
        assert_eq!(
            exit_code(Err(unimplemented.into())),
            ExitCode::from(EX_UNAVAILABLE)
        );
        assert_eq!(
            exit_code(Err(anyhow::anyhow!("boom"))),
            ExitCode::from(EX_FAILURE)
        );
    }
}
