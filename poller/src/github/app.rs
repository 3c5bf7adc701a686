//! GitHub App authentication: a JWT signed with the app's private key
//! (RS256, `iss` = app id, nine minutes long, issued a minute in the past
//! for clock drift) buys an installation token, which is refreshed five
//! minutes before it expires.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use secrecy::SecretString;
use serde::Deserialize;

use super::client::{GitHubError, read_json, status_error};

/// How long before expiry an installation token is replaced.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: DateTime<Utc>,
}

/// An app's identity and the installation tokens it holds.
pub struct AppCredentials {
    api_url: String,
    app_id: u64,
    key: EncodingKey,
    http: reqwest::Client,
    refresh_before: chrono::Duration,
    tokens: tokio::sync::Mutex<HashMap<u64, (SecretString, DateTime<Utc>)>>,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl AppCredentials {
    /// The app `app_id` with its private key (PEM); `Err` says why the key
    /// is unusable.
    pub fn new(api_url: &str, app_id: u64, private_key_pem: &[u8]) -> Result<Self, String> {
        let key = EncodingKey::from_rsa_pem(private_key_pem).map_err(|err| err.to_string())?;
        Ok(Self {
            api_url: api_url.trim_end_matches('/').to_string(),
            app_id,
            key,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("HTTP client builds"),
            refresh_before: chrono::Duration::from_std(REFRESH_BEFORE).expect("small duration"),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Replaces tokens this long before they expire (tests shorten it).
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before =
            chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::zero());
        self
    }

    fn jwt(&self) -> Result<String, GitHubError> {
        let now = Utc::now().timestamp();
        let claims =
            serde_json::json!({"iat": now - 60, "exp": now + 540, "iss": self.app_id.to_string()});
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|err| GitHubError::Signing(err.to_string()))
    }

    /// A valid token for `installation`, minting a new one when the held
    /// one is near expiry.
    pub async fn installation_token(&self, installation: u64) -> Result<SecretString, GitHubError> {
        let mut tokens = self.tokens.lock().await;
        if let Some((token, expires)) = tokens.get(&installation)
            && *expires - self.refresh_before > Utc::now()
        {
            return Ok(token.clone());
        }
        let path = format!("/app/installations/{installation}/access_tokens");
        let response = self
            .http
            .post(format!("{}{path}", self.api_url))
            .header(AUTHORIZATION, format!("Bearer {}", self.jwt()?))
            .header(ACCEPT, "application/vnd.github+json")
            .header(USER_AGENT, "slurm-actions-gha-poller")
            .send()
            .await
            .map_err(|source| GitHubError::Transport {
                path: path.clone(),
                source,
            })?;
        if let Some(err) = status_error(&path, &response) {
            return Err(err);
        }
        let minted: AccessToken = read_json(&path, response).await?;
        tracing::info!(installation, expires_at = %minted.expires_at, "installation token minted");
        let token = SecretString::from(minted.token);
        tokens.insert(installation, (token.clone(), minted.expires_at));
        Ok(token)
    }
}
