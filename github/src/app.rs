//! GitHub App authentication: a JWT signed with the app's private key
//! (RS256, `iss` = app id, nine minutes long, issued a minute in the past
//! for clock drift) buys an installation token, which is refreshed five
//! minutes before it expires.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::Method;
use hyper::header::{ACCEPT, AUTHORIZATION, HeaderValue, USER_AGENT};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde::Deserialize;

use crate::client::Endpoint;
use crate::error::{GitHubError, status_error};
use crate::limits::SECONDARY_BACKOFF;

/// How long before expiry an installation token is replaced.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: DateTime<Utc>,
}

/// An app's identity and the installation tokens it holds.
pub struct AppCredentials {
    endpoint: Endpoint,
    app_id: u64,
    key: EncodingKey,
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
    pub fn new(endpoint: &Endpoint, app_id: u64, private_key_pem: &[u8]) -> Result<Self, String> {
        let key = EncodingKey::from_rsa_pem(private_key_pem).map_err(|err| err.to_string())?;
        Ok(Self {
            endpoint: endpoint.clone(),
            app_id,
            key,
            refresh_before: chrono::Duration::from_std(REFRESH_BEFORE).expect("small duration"),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Checks that `private_key_pem` is an RSA private key an app can
    /// sign with; `Err` says why not (for validation before any I/O).
    pub fn check_key(private_key_pem: &[u8]) -> Result<(), String> {
        EncodingKey::from_rsa_pem(private_key_pem)
            .map(drop)
            .map_err(|err| err.to_string())
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
        let jwt = HeaderValue::from_str(&format!("Bearer {}", self.jwt()?))
            .map_err(|err| GitHubError::Signing(err.to_string()))?;
        let response = self
            .endpoint
            .http()
            .send(
                Method::POST,
                &format!("{}{path}", self.endpoint.api_url()),
                vec![
                    (AUTHORIZATION, jwt),
                    (
                        ACCEPT,
                        HeaderValue::from_static("application/vnd.github+json"),
                    ),
                    (USER_AGENT, HeaderValue::from_static("slurm-actions")),
                ],
                None,
            )
            .await
            .map_err(|failure| GitHubError::Transport {
                path: path.clone(),
                failure,
            })?;
        if let Some(err) = status_error(&path, &response, SECONDARY_BACKOFF) {
            return Err(err);
        }
        let minted: AccessToken = serde_json::from_slice(&response.body)
            .map_err(|err| GitHubError::decode(&path, err))?;
        tracing::info!(installation, expires_at = %minted.expires_at, "installation token minted");
        let token = SecretString::from(minted.token);
        tokens.insert(installation, (token.clone(), minted.expires_at));
        Ok(token)
    }
}
