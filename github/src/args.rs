//! The TLS flag every GitHub-facing binary shares: `--github-ca-file`,
//! read and checked before any I/O (a bad file is a configuration error,
//! exit 64).

use std::path::PathBuf;

use clap::Args;
use gha_runtime::ConfigError;

use crate::tls::TlsRoots;

/// How GitHub's server certificate is verified.
#[derive(Debug, Clone, Default, Args)]
pub struct GitHubTlsArgs {
    /// Extra CA certificates (PEM) to trust for GitHub, besides the
    /// system's: for GitHub Enterprise Server behind an internal CA.
    #[arg(long, env = "GHA_GITHUB_CA_FILE")]
    pub github_ca_file: Option<PathBuf>,
}

impl GitHubTlsArgs {
    /// The roots to verify GitHub against; reads the CA file.
    pub fn validate(&self) -> Result<TlsRoots, ConfigError> {
        match &self.github_ca_file {
            None => Ok(TlsRoots::platform()),
            Some(path) => TlsRoots::with_ca_file(path).map_err(|err| ConfigError(err.to_string())),
        }
    }
}
