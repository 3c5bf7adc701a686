//! Answering a registry's authentication challenge: anonymous until the
//! registry says otherwise, then basic credentials or a bearer token from
//! the challenge's realm, cached until shortly before it expires.
//!
//! Shared by the threads reading one image's blobs; a token is fetched by
//! one of them while the others wait for it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use super::challenge::{BearerChallenge, Challenge};
use super::client::{Http, is_loopback_url, registry_message, strip_query};
use super::credentials::FoundCredentials;
use crate::source::SourceError;

/// The lifetime a token endpoint implies when it does not say, and the
/// least one it may give (the distribution token spec; docker's client
/// raises shorter ones to it too).
const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// How one registry (for one repository) is authenticated against.
pub(super) struct Authenticator {
    registry: String,
    repository: String,
    /// What the auth files had for this registry, if anything.
    credentials: Option<FoundCredentials>,
    /// The files looked in, named when access is refused without credentials.
    searched: Vec<PathBuf>,
    /// Whether a token realm on plain http may receive credentials.
    insecure: bool,
    state: Mutex<State>,
}

/// What the registry asked for, learnt from its last challenge.
#[derive(Default)]
enum State {
    #[default]
    Anonymous,
    Basic,
    Bearer {
        challenge: BearerChallenge,
        token: Option<Token>,
    },
}

struct Token {
    value: SecretString,
    /// Refreshed from here on: a tenth of the lifetime before it ends.
    refresh_at: Instant,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Authenticator {
    pub fn new(
        registry: &str,
        repository: &str,
        credentials: Option<FoundCredentials>,
        searched: Vec<PathBuf>,
        insecure: bool,
    ) -> Self {
        Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            credentials,
            searched,
            insecure,
            state: Mutex::new(State::Anonymous),
        }
    }

    /// The `Authorization` value for the next request to the registry,
    /// fetching a new token first when the cached one is due.
    pub fn authorization(&self, http: &Http) -> Result<Option<SecretString>, SourceError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match &mut *state {
            State::Anonymous => Ok(None),
            State::Basic => Ok(self.basic_header()),
            State::Bearer { challenge, token } => {
                let fresh = token
                    .as_ref()
                    .is_some_and(|token| Instant::now() < token.refresh_at);
                if !fresh {
                    *token = Some(self.fetch_token(http, challenge)?);
                }
                Ok(token.as_ref().map(|token| bearer_header(&token.value)))
            }
        }
    }

    /// Adopts the challenge of a 401 and gets what it asks for (a token);
    /// an error when it cannot be answered.
    pub fn answer(
        &self,
        http: &Http,
        challenge: Option<Challenge>,
        what: &str,
    ) -> Result<(), SourceError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match challenge {
            None => Err(SourceError::Unauthorized {
                what: what.to_owned(),
                detail: format!(
                    "{} answered 401 without a Basic or Bearer challenge",
                    self.registry
                ),
            }),
            Some(Challenge::Basic) => {
                if self.credentials.is_none() {
                    return Err(self.refused(what, ""));
                }
                *state = State::Basic;
                Ok(())
            }
            Some(Challenge::Bearer(challenge)) => {
                let token = self.fetch_token(http, &challenge)?;
                *state = State::Bearer {
                    challenge,
                    token: Some(token),
                };
                Ok(())
            }
        }
    }

    /// Access denied, explained: which credentials were used, or where
    /// none were found; `registry_says` is the registry's own message.
    pub fn refused(&self, what: &str, registry_says: &str) -> SourceError {
        let mut detail = match &self.credentials {
            Some(found) => format!(
                "{} refused the credentials of user {:?} (from {})",
                self.registry,
                found.credentials.username,
                found.file.display()
            ),
            None if self.searched.is_empty() => format!(
                "{} refused anonymous access and no auth file was given",
                self.registry
            ),
            None => format!(
                "{} refused anonymous access; no credentials for it in {}",
                self.registry,
                self.searched
                    .iter()
                    .map(|file| file.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        if !registry_says.is_empty() {
            detail.push_str(&format!(" ({registry_says})"));
        }
        SourceError::Unauthorized {
            what: what.to_owned(),
            detail,
        }
    }

    fn basic_header(&self) -> Option<SecretString> {
        let credentials = &self.credentials.as_ref()?.credentials;
        let pair = format!(
            "{}:{}",
            credentials.username,
            credentials.password.expose_secret()
        );
        Some(
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
            .into(),
        )
    }

    /// `GET realm?service=..&scope=..`, with basic credentials when there
    /// are any, per the distribution token specification.
    fn fetch_token(&self, http: &Http, challenge: &BearerChallenge) -> Result<Token, SourceError> {
        let what = format!("token for {} from {}", self.repository, challenge.realm);
        let default_scope = format!("repository:{}:pull", self.repository);
        let scope = challenge.scope.as_deref().unwrap_or(&default_scope);
        let url = token_url(challenge, scope);
        let basic = self.basic_header();
        if basic.is_some() && url.starts_with("http://") && !self.insecure && !is_loopback_url(&url)
        {
            return Err(SourceError::Unauthorized {
                what,
                detail: format!(
                    "refusing to send the credentials for {} to a plain-http token service",
                    self.registry
                ),
            });
        }
        let mut response = http.send(&what, || {
            let request = http.agent().get(&url);
            match &basic {
                Some(value) => request.header("Authorization", value.expose_secret()),
                None => request,
            }
        })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.refused(&what, &registry_message(&mut response)));
        }
        if status != 200 {
            return Err(SourceError::Transport {
                what,
                detail: format!(
                    "token service {} answered HTTP {status}",
                    strip_query(&challenge.realm)
                ),
            });
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|error| SourceError::Transport {
                what: what.clone(),
                detail: error.to_string(),
            })?;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|error| SourceError::Malformed {
                what: what.clone(),
                detail: format!("token response: {error}"),
            })?;
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| SourceError::Malformed {
                what,
                detail: "token response without token".into(),
            })?;
        Ok(Token {
            value: value.into(),
            refresh_at: Instant::now() + refresh_after(parsed.expires_in),
        })
    }
}

/// How long after issue a token is used: its lifetime (at least the
/// minimum) less a tenth, so that no request goes out with a token about
/// to expire.
fn refresh_after(expires_in: Option<u64>) -> Duration {
    let lifetime = expires_in
        .map_or(MIN_TOKEN_LIFETIME, Duration::from_secs)
        .max(MIN_TOKEN_LIFETIME);
    lifetime - lifetime / 10
}

fn bearer_header(token: &SecretString) -> SecretString {
    format!("Bearer {}", token.expose_secret()).into()
}

/// The realm with `service` and one `scope` parameter per scope.
fn token_url(challenge: &BearerChallenge, scope: &str) -> String {
    let mut url = challenge.realm.clone();
    let mut separator = if url.contains('?') { '&' } else { '?' };
    let mut add = |key: &str, value: &str| {
        url.push(separator);
        url.push_str(key);
        url.push('=');
        url.push_str(&percent_encode(value));
        separator = '&';
    };
    if let Some(service) = &challenge.service {
        add("service", service);
    }
    for scope in scope.split_ascii_whitespace() {
        add("scope", scope);
    }
    url
}

/// A query value with everything but RFC 3986's unreserved characters
/// escaped.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls_carry_service_and_each_scope() {
        let challenge = BearerChallenge {
            realm: "https://auth.example/token".into(),
            service: Some("registry example".into()),
            scope: None,
        };
        assert_eq!(
            token_url(&challenge, "repository:a/b:pull repository:c:pull,push"),
            "https://auth.example/token?service=registry%20example\
             &scope=repository%3Aa%2Fb%3Apull&scope=repository%3Ac%3Apull%2Cpush"
        );
        let with_query = BearerChallenge {
            realm: "https://auth.example/token?x=1".into(),
            service: None,
            scope: None,
        };
        assert_eq!(
            token_url(&with_query, "s"),
            "https://auth.example/token?x=1&scope=s"
        );
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        assert_eq!(refresh_after(Some(300)), Duration::from_secs(270));
        assert_eq!(refresh_after(None), Duration::from_secs(54));
        assert_eq!(
            refresh_after(Some(5)),
            Duration::from_secs(54),
            "raised to the minimum"
        );
    }

    fn bot() -> Option<FoundCredentials> {
        Some(FoundCredentials {
            credentials: super::super::Credentials {
                username: "bot".into(),
                password: "hunter2".to_owned().into(),
            },
            file: "/y/auth.json".into(),
        })
    }

    #[test]
    fn credentials_never_go_to_a_remote_plain_http_token_service() {
        // Refused before any request is made: nothing leaves this machine.
        let http = Http::new(
            super::super::RetryPolicy::default(),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let authenticator = Authenticator::new("r.example", "a", bot(), vec![], false);
        let challenge = Challenge::Bearer(BearerChallenge {
            realm: "http://auth.example/token".into(),
            service: None,
            scope: None,
        });
        match authenticator.answer(&http, Some(challenge), "manifest") {
            Err(SourceError::Unauthorized { detail, .. }) => {
                assert!(detail.contains("plain-http"), "{detail}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn refusals_name_the_user_or_the_files_searched() {
        let anonymous = Authenticator::new("r", "a", None, vec!["/x/config.json".into()], false);
        let text = anonymous.refused("manifest", "").to_string();
        assert!(
            text.contains("no credentials for it in /x/config.json"),
            "{text}"
        );
        let with_user = Authenticator::new("r", "a", bot(), vec![], false);
        let text = with_user.refused("manifest", "denied").to_string();
        assert!(text.contains("user \"bot\" (from /y/auth.json)"), "{text}");
        assert!(text.contains("(denied)"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
