//! Connecting to NATS: the flags every service takes, and the connection.
//!
//! Secrets (the credentials file, the NKey seed) are read from files, never
//! flags or logs. The client keeps retrying the initial connection and
//! reconnects forever, so a service may start before its NATS server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use async_nats::{Client, ConnectOptions, ServerAddr};
use clap::Args;

use crate::exit::ConfigError;

/// NATS connection flags.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS server URLs, comma-separated (`nats://host:4222`, `tls://...`).
    #[arg(
        long = "nats-url",
        env = "GHA_NATS_URL",
        value_delimiter = ',',
        default_value = "nats://127.0.0.1:4222"
    )]
    pub urls: Vec<String>,

    /// NATS credentials file (JWT and NKey seed, as `nsc` writes it).
    #[arg(
        long = "nats-creds-file",
        env = "GHA_NATS_CREDS_FILE",
        conflicts_with = "nkey_file"
    )]
    pub creds_file: Option<PathBuf>,

    /// File holding an NKey seed (`SU...`) to authenticate with.
    #[arg(long = "nats-nkey-file", env = "GHA_NATS_NKEY_FILE")]
    pub nkey_file: Option<PathBuf>,

    /// CA certificate (PEM) to verify the server's TLS certificate; implies
    /// TLS.
    #[arg(long = "nats-tls-ca-file", env = "GHA_NATS_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
}

/// Validated connection settings.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub servers: Vec<ServerAddr>,
    pub creds_file: Option<PathBuf>,
    pub nkey_file: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
}

impl NatsArgs {
    /// Checks the flags without connecting: URLs parse, named files exist.
    pub fn validate(&self) -> Result<NatsConfig, ConfigError> {
        let mut servers = Vec::new();
        for url in self
            .urls
            .iter()
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
        {
            let addr: ServerAddr = url
                .parse()
                .map_err(|err| ConfigError(format!("--nats-url {url:?}: {err}")))?;
            servers.push(addr);
        }
        if servers.is_empty() {
            return Err(ConfigError("--nats-url: no server given".into()));
        }
        for (flag, file) in [
            ("--nats-creds-file", &self.creds_file),
            ("--nats-nkey-file", &self.nkey_file),
            ("--nats-tls-ca-file", &self.tls_ca_file),
        ] {
            if let Some(path) = file
                && !path.is_file()
            {
                return Err(ConfigError(format!(
                    "{flag} {}: no such file",
                    path.display()
                )));
            }
        }
        Ok(NatsConfig {
            servers,
            creds_file: self.creds_file.clone(),
            nkey_file: self.nkey_file.clone(),
            tls_ca_file: self.tls_ca_file.clone(),
        })
    }
}

impl NatsConfig {
    /// Connects as `name` (shown in the server's connection list): a
    /// service's connection. Returns at once; the first connection is
    /// retried until it succeeds, and the client reconnects forever.
    pub async fn connect(&self, name: &str) -> anyhow::Result<Client> {
        self.options(name)
            .await?
            .retry_on_initial_connect()
            .connect(self.servers.as_slice())
            .await
            .context("connecting to NATS")
    }

    /// Connects as `name` once, for a command that must fail (not wait)
    /// when NATS is not there: an error if no server answers within
    /// `timeout`.
    pub async fn connect_once(&self, name: &str, timeout: Duration) -> anyhow::Result<Client> {
        let options = self.options(name).await?.connection_timeout(timeout);
        tokio::time::timeout(timeout, options.connect(self.servers.as_slice()))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
            .map_err(anyhow::Error::from)
            .with_context(|| format!("NATS unreachable at {}", self.describe()))
    }

    /// The servers, for messages: without any userinfo in the URLs.
    pub fn describe(&self) -> String {
        self.servers
            .iter()
            .map(|server| {
                let url = server.as_url_str();
                match url.split_once("://") {
                    Some((scheme, rest)) => {
                        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
                        format!("{scheme}://{host}")
                    }
                    None => url.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn options(&self, name: &str) -> anyhow::Result<ConnectOptions> {
        let mut options = ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection");
            });
        if let Some(path) = &self.creds_file {
            options = options
                .credentials_file(path)
                .await
                .with_context(|| format!("reading NATS credentials {}", path.display()))?;
        }
        if let Some(path) = &self.nkey_file {
            let seed = std::fs::read_to_string(path)
                .with_context(|| format!("reading NKey seed {}", path.display()))?;
            options = options.nkey(seed.trim().to_string());
        }
        if let Some(path) = &self.tls_ca_file {
            options = options
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsArgs,
    }

    fn parse(args: &[&str]) -> Result<NatsArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|cli| cli.nats)
    }

    #[test]
    fn several_urls_are_accepted() {
        let config = parse(&["--nats-url", "nats://a:4222,nats://b:4222"])
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(config.servers.len(), 2);
    }

    #[test]
    fn a_missing_credentials_file_is_a_config_error_naming_the_flag() {
        let err = parse(&["--nats-creds-file", "/nonexistent/x.creds"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("--nats-creds-file"), "{err}");
    }

    #[test]
    fn creds_and_nkey_together_are_refused() {
        assert!(parse(&["--nats-creds-file", "a", "--nats-nkey-file", "b"]).is_err());
    }

    #[test]
    fn descriptions_never_show_userinfo() {
        let config = parse(&["--nats-url", "nats://user:secret@a:4222,tls://b:4443"])
            .unwrap()
            .validate()
            .unwrap();
        let text = config.describe();
        assert!(!text.contains("secret") && !text.contains("user"), "{text}");
        assert!(text.contains("a:4222") && text.contains("b:4443"), "{text}");
    }

    #[test]
    fn a_malformed_url_is_refused() {
        let err = parse(&["--nats-url", "nats://host:notaport"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("notaport"), "{err}");
    }
}
