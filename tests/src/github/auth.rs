//! Who a request is: a personal access token, a GitHub App (by its JWT), or
//! an app installation (by an installation token).
//!
//! `Authorization: Bearer <token>` and `Authorization: token <token>` are
//! both accepted, as on GitHub. A missing header is `401 Requires
//! authentication`; an unknown or expired token is `401 Bad credentials`.
//! App JWTs are RS256, `iss` = the app id, at most ten minutes long.
//!
//! Source: docs.github.com, "Authenticating to the REST API" and
//! "Generating a JSON Web Token (JWT) for a GitHub App".

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::model::{Installation, Timestamp};
use super::world::{ApiError, World};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A personal access token: sees every repository.
    Pat { token: String },
    /// A GitHub App, authenticated by JWT: may only mint installation
    /// tokens.
    App { app_id: u64 },
    /// An installation token: sees its installation's repositories.
    Installation { id: u64, token: String },
}

impl Identity {
    /// The key rate limits are counted under.
    pub fn rate_key(&self) -> String {
        match self {
            Self::Pat { token } | Self::Installation { token, .. } => token.clone(),
            Self::App { app_id } => format!("app-{app_id}"),
        }
    }
}

#[derive(Debug, Deserialize)]
struct AppClaims {
    iss: serde_json::Value,
    iat: i64,
    exp: i64,
}

/// Every credential the emulator accepts.
#[derive(Default)]
pub struct Credentials {
    pats: Vec<String>,
    apps: HashMap<u64, DecodingKey>,
    installation_tokens: HashMap<String, (u64, Timestamp)>,
}

impl Credentials {
    /// Accepts `token` as a personal access token.
    pub fn add_pat(&mut self, token: impl Into<String>) {
        self.pats.push(token.into());
    }

    /// Registers a GitHub App by its public key (PEM).
    pub fn add_app(&mut self, app_id: u64, public_key_pem: &[u8]) -> Result<(), ApiError> {
        let key = DecodingKey::from_rsa_pem(public_key_pem)
            .map_err(|err| ApiError::invalid(format!("app public key: {err}")))?;
        self.apps.insert(app_id, key);
        Ok(())
    }

    /// Reads the `Authorization` header.
    pub fn authenticate(&self, header: Option<&str>, now: Timestamp) -> Result<Identity, ApiError> {
        let header = header.ok_or_else(|| ApiError::new(401, "Requires authentication"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .or_else(|| header.strip_prefix("token "))
            .map(str::trim)
            .ok_or_else(|| ApiError::new(401, "Bad credentials"))?;
        let bad = || ApiError::new(401, "Bad credentials");
        if self.pats.iter().any(|pat| pat == token) {
            return Ok(Identity::Pat {
                token: token.into(),
            });
        }
        if let Some((id, expires)) = self.installation_tokens.get(token) {
            if *expires <= now {
                return Err(bad());
            }
            return Ok(Identity::Installation {
                id: *id,
                token: token.into(),
            });
        }
        if token.matches('.').count() == 2 {
            return self.verify_app_jwt(token, now);
        }
        Err(bad())
    }

    fn verify_app_jwt(&self, jwt: &str, now: Timestamp) -> Result<Identity, ApiError> {
        let refuse = |why: &str| {
            ApiError::new(
                401,
                format!("A JSON web token could not be decoded ({why})"),
            )
        };
        let unverified = jsonwebtoken::dangerous::insecure_decode::<AppClaims>(jwt)
            .map_err(|err| refuse(&err.to_string()))?;
        let app_id = match &unverified.claims.iss {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| refuse("iss is not an app id"))?;
        let key = self
            .apps
            .get(&app_id)
            .ok_or_else(|| ApiError::new(401, "Integration not found"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "iat", "iss"]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<AppClaims>(jwt, key, &validation)
            .map_err(|err| refuse(&err.to_string()))?
            .claims;
        let now = now.timestamp();
        if claims.exp <= now {
            return Err(refuse(
                "'Expiration time' claim ('exp') is too far in the past",
            ));
        }
        if claims.exp - claims.iat > 600 {
            return Err(refuse(
                "'Expiration time' claim ('exp') is too far in the future",
            ));
        }
        if claims.iat > now + 60 {
            return Err(refuse(
                "'Issued at' claim ('iat') must be an Integer representing a time in the past",
            ));
        }
        Ok(Identity::App { app_id })
    }

    /// `POST /app/installations/{id}/access_tokens`: a token for the
    /// installation, valid for the world's token lifetime.
    pub fn issue_installation_token(
        &mut self,
        world: &World,
        identity: &Identity,
        installation_id: u64,
        now: Timestamp,
    ) -> Result<(String, Timestamp, Installation), ApiError> {
        let Identity::App { app_id } = identity else {
            return Err(ApiError::new(401, "A JSON web token could not be decoded"));
        };
        let installation = world
            .installations
            .get(&installation_id)
            .filter(|installation| installation.app_id == *app_id)
            .ok_or_else(ApiError::not_found)?
            .clone();
        let token = format!("ghs_{}", &uuid::Uuid::new_v4().simple().to_string()[..32]);
        let expires = now
            + chrono::Duration::from_std(world.settings().token_ttl)
                .unwrap_or(chrono::Duration::MAX);
        self.installation_tokens
            .insert(token.clone(), (installation_id, expires));
        Ok((token, expires, installation))
    }
}

/// Whether `identity` may read or act on repository `repo`.
pub fn can_access(world: &World, identity: &Identity, repo: &str) -> bool {
    installation_allows(world, identity, |installation| {
        installation.repos.iter().any(|r| r == repo)
    })
}

/// Whether `identity` may act on organisation `org`.
pub fn can_access_org(world: &World, identity: &Identity, org: &str) -> bool {
    installation_allows(world, identity, |installation| installation.account == org)
}

/// A PAT may do anything, an app JWT nothing but mint tokens, an
/// installation token what its installation covers.
fn installation_allows(
    world: &World,
    identity: &Identity,
    covers: impl Fn(&Installation) -> bool,
) -> bool {
    match identity {
        Identity::Pat { .. } => true,
        Identity::App { .. } => false,
        Identity::Installation { id, .. } => world.installations.get(id).is_some_and(covers),
    }
}
