//! `gha-unpacker request SOURCE`: for a CI workflow step. Asks the service
//! (over HTTP with `--url`, otherwise over NATS) and prints the published
//! path on stdout; exits non-zero with the service's error otherwise.
//!
//! Over HTTP without `--wait`, it prints the path the image will have as
//! soon as the service has resolved it. Over NATS it always waits for the
//! `UnpackResult`: that is where the path comes from.
//!
//! Nothing here waits without a bound: `--connect-timeout` bounds reaching
//! the service (and NATS being away mid-request), `--timeout` the whole
//! request, and an unreachable NATS or HTTP endpoint is named in the error.

mod http;
mod nats;
pub mod tls;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use gha_runtime::ConfigError;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use secrecy::SecretString;

use crate::cli::TRANSPORTS;
use crate::cli::parse_platform;
use crate::serve::config::read_tokens;

pub use nats::NatsUnreachable;

/// `gha-unpacker request` flags.
#[derive(Debug, Clone, Args)]
pub struct RequestArgs {
    /// Image, in skopeo's transport syntax.
    pub source: String,
    /// The service's HTTP API, e.g. `https://stratum0:8480`; NATS when unset.
    #[arg(long, env = "GHA_UNPACKER_URL")]
    pub url: Option<String>,
    /// File with the API's bearer token (with `--url`).
    #[arg(long, env = "GHA_UNPACKER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for an `https://` `--url` besides the
    /// platform's roots: for a service behind a site-internal CA.
    #[arg(long, env = "GHA_UNPACKER_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Seconds to keep the image after this request; the service's default
    /// when unset.
    #[arg(long, env = "GHA_UNPACKER_TTL")]
    pub ttl: Option<u64>,
    /// Wait until the image is published (always, over NATS).
    #[arg(long, env = "GHA_UNPACKER_WAIT")]
    pub wait: bool,
    /// Readable tag link; derived from the source when unset.
    #[arg(long)]
    pub tag: Option<String>,
    /// `os/arch[/variant]` of a multi-platform image.
    #[arg(long)]
    pub platform: Option<String>,
    /// Seconds to wait for the answer, connecting included.
    #[arg(long, env = "GHA_UNPACKER_TIMEOUT", default_value_t = 1800)]
    pub timeout: u64,
    /// Seconds to wait for a connection to the service or to NATS (also
    /// for NATS to come back when it goes away mid-request); at most
    /// `--timeout`.
    #[arg(long, env = "GHA_UNPACKER_CONNECT_TIMEOUT", default_value_t = 30)]
    pub connect_timeout: u64,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// How to reach the service.
#[derive(Debug)]
pub enum Transport {
    Http {
        url: String,
        token: SecretString,
        /// Extra trusted roots, parsed from `--ca-file`.
        tls: tls::ExtraRoots,
    },
    Nats(NatsConfig),
}

/// The validated `request` configuration.
#[derive(Debug)]
pub struct RequestConfig {
    pub source: String,
    pub transport: Transport,
    pub ttl: Option<u64>,
    pub wait: bool,
    pub tag: Option<String>,
    pub platform: Option<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl RequestArgs {
    /// Checks the flags; reads the token and CA files, nothing else.
    pub fn validate(self) -> Result<RequestConfig, ConfigError> {
        if !TRANSPORTS
            .iter()
            .any(|prefix| self.source.starts_with(prefix))
        {
            return Err(ConfigError(format!(
                "source {:?}: expected one of {}",
                self.source,
                TRANSPORTS.join(", ")
            )));
        }
        if let Some(platform) = &self.platform {
            parse_platform(platform)?;
        }
        let transport = match self.url {
            Some(url) => {
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(ConfigError(format!("--url {url:?}: expected http(s)://")));
                }
                let file = self
                    .token_file
                    .ok_or_else(|| ConfigError("--url needs --token-file".into()))?;
                let token = read_tokens("--token-file", &file)?.remove(0);
                let tls = match &self.ca_file {
                    Some(path) => tls::ExtraRoots::read("--ca-file", path)?,
                    None => tls::ExtraRoots::default(),
                };
                Transport::Http {
                    url: url.trim_end_matches('/').to_owned(),
                    token,
                    tls,
                }
            }
            None => {
                if self.ca_file.is_some() {
                    return Err(ConfigError(
                        "--ca-file is for an https:// --url; over NATS use --nats-tls-ca-file"
                            .into(),
                    ));
                }
                Transport::Nats(self.nats.validate()?)
            }
        };
        let timeout = Duration::from_secs(self.timeout.max(1));
        Ok(RequestConfig {
            source: self.source,
            transport,
            ttl: self.ttl,
            wait: self.wait,
            tag: self.tag,
            platform: self.platform,
            timeout,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)).min(timeout),
        })
    }
}

/// Asks the service and returns the published (or future) path.
pub async fn request(config: &RequestConfig) -> anyhow::Result<String> {
    match &config.transport {
        Transport::Http { url, token, tls } => http::over_http(config, url, token, tls).await,
        Transport::Nats(nats) => nats::over_nats(config, nats).await,
    }
}
