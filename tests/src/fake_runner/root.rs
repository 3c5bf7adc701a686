//! What the listener writes into its root directory, in the real runner's
//! order (actions/runner `Runner.Listener`): `_diag/` with its trace log
//! first (`HostContext`, before anything else), then the JIT config's files
//! (`Runner.ExecuteCommand`: `.runner`, `.credentials`,
//! `.credentials_rsaparams`, each `File.WriteAllBytes` into the root), then
//! the work folder (`Runner.RunAsync`). A read-only root fails at the first
//! step, as the real runner does.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};

use super::FakeRunnerError;
use crate::github::runner_api::{CredentialsFile, JitConfigError, RunnerFile};

/// The diagnostics directory, beside `bin/`.
pub const DIAG: &str = "_diag";

/// A runner's root directory: the parent of its `bin/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerRoot {
    path: PathBuf,
}

/// `_diag/` could not be made: the real listener dies of an unhandled .NET
/// exception here (`HostTraceListener`'s `Directory.CreateDirectory`), before
/// it parses its arguments.
#[derive(Debug, thiserror::Error)]
#[error("{}", dotnet_exception(.source, .path))]
pub struct DiagUnwritable {
    pub path: PathBuf,
    pub source: io::Error,
}

impl RunnerRoot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `_diag/` and opens this run's trace log in it,
    /// `Runner_YYYYMMDD-HHMMSS-utc.log`, as the real listener names it.
    pub fn open_diag(&self, now: DateTime<Utc>) -> Result<File, DiagUnwritable> {
        let dir = self.path.join(DIAG);
        let unwritable = |path: &Path, source| DiagUnwritable {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|err| unwritable(&dir, err))?;
        let log = dir.join(format!("Runner_{}-utc.log", now.format("%Y%m%d-%H%M%S")));
        File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|err| unwritable(&log, err))
    }

    /// Writes each file of an `encoded_jit_config` into the root, as the
    /// real listener does (default mode, so `0666 & !umask`: the directory
    /// around the root is what keeps `.credentials` private).
    pub fn write_jit_config(&self, encoded: &str) -> Result<(), FakeRunnerError> {
        let files: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(
            &STANDARD
                .decode(encoded.trim())
                .map_err(JitConfigError::from)?,
        )
        .map_err(JitConfigError::from)?;
        for (name, value) in files {
            let contents = value
                .as_str()
                .ok_or(JitConfigError::MissingFile(".runner"))
                .and_then(|text| Ok(STANDARD.decode(text)?))?;
            let path = self.path.join(&name);
            std::fs::write(&path, contents)
                .map_err(|err| FakeRunnerError::RunnerFiles(dotnet_exception(&err, &path)))?;
            tracing::info!(file = %path.display(), "saved a file of the JIT config");
        }
        Ok(())
    }

    /// The runner's settings and credential from `.runner` and
    /// `.credentials`; [`FakeRunnerError::NotConfigured`] without them.
    pub fn load_settings(&self) -> Result<(RunnerFile, CredentialsFile), FakeRunnerError> {
        let read = |name: &str| std::fs::read(self.path.join(name)).ok();
        let (Some(runner), Some(credentials)) = (read(".runner"), read(".credentials")) else {
            return Err(FakeRunnerError::NotConfigured);
        };
        let runner = serde_json::from_slice(&runner).map_err(JitConfigError::from)?;
        let credentials = serde_json::from_slice(&credentials).map_err(JitConfigError::from)?;
        Ok((runner, credentials))
    }

    /// Creates the work folder (`_work` for a JIT runner) under the root.
    pub fn create_work_dir(&self, work_folder: &str) -> Result<PathBuf, FakeRunnerError> {
        let path = self.path.join(work_folder);
        std::fs::create_dir_all(&path).map_err(|err| {
            tracing::error!(error = %err, path = %path.display(), "work directory");
            FakeRunnerError::WorkDirectory { path: path.clone() }
        })?;
        Ok(path)
    }
}

/// `err` on `path` as .NET words it in an exception's message:
/// `System.IO.IOException: Read-only file system : '/x'`, or
/// `System.UnauthorizedAccessException: Access to the path '/x' is denied.`
pub fn dotnet_exception(err: &io::Error, path: &Path) -> String {
    if err.kind() == io::ErrorKind::PermissionDenied {
        return format!(
            "System.UnauthorizedAccessException: Access to the path '{}' is denied.",
            path.display()
        );
    }
    let text = err.to_string();
    let reason = text
        .split_once(" (os error")
        .map_or(text.as_str(), |(reason, _)| reason);
    format!("System.IO.IOException: {reason} : '{}'", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_dotnet_exceptions() {
        let path = Path::new("/home/runner/_diag");
        let read_only = io::Error::from_raw_os_error(30);
        assert_eq!(
            dotnet_exception(&read_only, path),
            "System.IO.IOException: Read-only file system : '/home/runner/_diag'"
        );
        let denied = io::Error::from_raw_os_error(13);
        assert_eq!(
            dotnet_exception(&denied, path),
            "System.UnauthorizedAccessException: Access to the path '/home/runner/_diag' is denied."
        );
    }

    #[test]
    fn the_diag_log_is_named_as_the_real_runners() {
        let dir = tempfile::tempdir().unwrap();
        let root = RunnerRoot::new(dir.path());
        let at = DateTime::parse_from_rfc3339("2024-11-26T09:05:03Z")
            .unwrap()
            .with_timezone(&Utc);
        root.open_diag(at).unwrap();
        assert!(
            dir.path()
                .join("_diag/Runner_20241126-090503-utc.log")
                .is_file()
        );
    }

    #[test]
    fn no_runner_files_means_not_configured() {
        let dir = tempfile::tempdir().unwrap();
        let err = RunnerRoot::new(dir.path()).load_settings().unwrap_err();
        assert!(matches!(err, FakeRunnerError::NotConfigured), "{err}");
    }
}
