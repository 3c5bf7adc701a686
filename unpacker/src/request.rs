//! `gha-unpacker request SOURCE`: for a CI workflow step. Asks the service
//! (over HTTP with `--url`, otherwise over NATS) and prints the published
//! path on stdout; exits non-zero with the service's error otherwise.
//!
//! Over HTTP without `--wait`, it prints the path the image will have as
//! soon as the service has resolved it. Over NATS it always waits for the
//! `UnpackResult`: that is where the path comes from.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use gha_proto::consumer::Decode;
use gha_proto::v1::{UnpackRequest, UnpackResult, UnpackStatus};
use gha_proto::{Contract, subjects};
use gha_runtime::ConfigError;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use secrecy::{ExposeSecret, SecretString};

use crate::cli::TRANSPORTS;
use crate::cli::parse_platform;
use crate::serve::config::read_tokens;
use crate::serve::http::ImageBody;

/// `gha-unpacker request` flags.
#[derive(Debug, Clone, Args)]
pub struct RequestArgs {
    /// Image, in skopeo's transport syntax.
    pub source: String,
    /// The service's HTTP API, e.g. `http://stratum0:8480`; NATS when unset.
    #[arg(long, env = "GHA_UNPACKER_URL")]
    pub url: Option<String>,
    /// File with the API's bearer token (with `--url`).
    #[arg(long, env = "GHA_UNPACKER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds to keep the image after this request; the service's default
    /// when unset.
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Wait until the image is published (always, over NATS).
    #[arg(long)]
    pub wait: bool,
    /// Readable tag link; derived from the source when unset.
    #[arg(long)]
    pub tag: Option<String>,
    /// `os/arch[/variant]` of a multi-platform image.
    #[arg(long)]
    pub platform: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    #[command(flatten)]
    pub nats: NatsArgs,
}

/// How to reach the service.
#[derive(Debug)]
pub enum Transport {
    Http { url: String, token: SecretString },
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
}

impl RequestArgs {
    /// Checks the flags; reads the token file, nothing else.
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
                Transport::Http {
                    url: url.trim_end_matches('/').to_owned(),
                    token,
                }
            }
            None => Transport::Nats(self.nats.validate()?),
        };
        Ok(RequestConfig {
            source: self.source,
            transport,
            ttl: self.ttl,
            wait: self.wait,
            tag: self.tag,
            platform: self.platform,
            timeout: Duration::from_secs(self.timeout.max(1)),
        })
    }
}

/// Asks the service and returns the published (or future) path.
pub async fn request(config: &RequestConfig) -> anyhow::Result<String> {
    match &config.transport {
        Transport::Http { url, token } => over_http(config, url, token).await,
        Transport::Nats(nats) => over_nats(config, nats).await,
    }
}

async fn over_http(
    config: &RequestConfig,
    url: &str,
    token: &SecretString,
) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .build()
        .context("building the HTTP client")?;
    let body = serde_json::json!({
        "source": config.source,
        "ttl_seconds": config.ttl,
        "wait": config.wait,
        "platform": config.platform,
        "tag": config.tag,
    });
    let response = client
        .post(format!("{url}/images"))
        .bearer_auth(token.expose_secret())
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}/images"))?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        bail!("the unpacker answered {status}: {message}");
    }
    let image: ImageBody = serde_json::from_str(&text)
        .with_context(|| format!("the unpacker's answer is not an image: {text}"))?;
    Ok(image.path)
}

async fn over_nats(config: &RequestConfig, nats: &NatsConfig) -> anyhow::Result<String> {
    let client = nats.connect("gha-unpacker-request").await?;
    let contract = Contract::new(client.clone());
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    // Subscribe before asking, so the result cannot be missed.
    let mut results = client
        .subscribe(subjects::unpack_result(&request_id))
        .await
        .context("subscribing to the result")?;
    client.flush().await.context("subscribing to the result")?;
    let (os, architecture, variant) = match config.platform.as_deref().map(parse_platform) {
        Some(Ok(platform)) => (
            platform.os,
            platform.architecture,
            platform.variant.unwrap_or_default(),
        ),
        _ => Default::default(),
    };
    let request = UnpackRequest {
        request_id: request_id.clone(),
        source: config.source.clone(),
        ttl_seconds: config.ttl.unwrap_or(0),
        os,
        architecture,
        variant,
        apptainer: true,
        tag: config.tag.clone().unwrap_or_default(),
    };
    contract
        .publish(&request)
        .await
        .context("publishing the unpack request (is gha-unpacker serve running?)")?;
    tracing::info!(request_id, "requested; waiting for the result");
    let message = tokio::time::timeout(config.timeout, results.next())
        .await
        .map_err(|_| anyhow::anyhow!("no result within {:?}", config.timeout))?
        .context("the result subscription ended")?;
    let result = UnpackResult::decode_from(&message.subject, message.payload)?;
    match UnpackStatus::try_from(result.status) {
        Ok(UnpackStatus::Published | UnpackStatus::AlreadyPresent) => Ok(result.path),
        _ => bail!("unpacking {} failed: {}", config.source, result.error),
    }
}
