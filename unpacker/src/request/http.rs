//! `request` over the service's HTTP API (`--url`), plain or TLS.
//!
//! ureq, blocking, on tokio's blocking pool: the unpacker's one HTTPS
//! client (the registry client is the same), so TLS is set up in one way.

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use super::RequestConfig;
use super::tls::ExtraRoots;
use crate::serve::http::ImageBody;

pub(super) async fn over_http(
    config: &RequestConfig,
    url: &str,
    token: &SecretString,
    roots: &ExtraRoots,
) -> anyhow::Result<String> {
    let agent = ureq::Agent::config_builder()
        .tls_config(roots.tls_config())
        .http_status_as_error(false)
        .timeout_connect(Some(config.connect_timeout))
        .timeout_global(Some(config.timeout))
        .build()
        .new_agent();
    let body = serde_json::json!({
        "source": config.source,
        "ttl_seconds": config.ttl,
        "wait": config.wait,
        "platform": config.platform,
        "tag": config.tag,
    })
    .to_string();
    let endpoint = format!("{url}/images");
    let authorization = format!("Bearer {}", token.expose_secret());
    let send = {
        let endpoint = endpoint.clone();
        move || -> Result<(u16, String), ureq::Error> {
            let mut response = agent
                .post(&endpoint)
                .header("authorization", &authorization)
                .header("content-type", "application/json")
                .send(body.as_str())?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string()?;
            Ok((status, text))
        }
    };
    let (status, text) = tokio::task::spawn_blocking(send)
        .await
        .context("the HTTP request panicked")?
        .map_err(|err| anyhow::Error::new(err).context(unreachable(&endpoint, roots)))?;
    if !(200..300).contains(&status) {
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

/// What failed, said so that an operator knows where to look.
fn unreachable(endpoint: &str, roots: &ExtraRoots) -> String {
    let trust = match roots.source() {
        Some(path) if endpoint.starts_with("https://") => format!(
            " (TLS trusts the system's roots and {} CA certificate(s) of {})",
            roots.len(),
            path.display()
        ),
        None if endpoint.starts_with("https://") => {
            " (TLS trusts the platform's roots; --ca-file adds a site CA)".to_owned()
        }
        _ => String::new(),
    };
    format!("POST {endpoint}: no answer from the unpacker{trust}")
}
