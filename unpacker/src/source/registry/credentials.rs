//! Registry credentials from a docker `config.json` (or containers'
//! `auth.json`, the same format): where to look, and the entry that
//! belongs to a registry.
//!
//! Only `auths` entries are read (`auth` = base64 `user:password`, or
//! `username`/`password`); credential helpers and identity tokens are not
//! run, and a file that names one for the registry says so in a warning.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::SecretString;

/// A user name and its password (or personal access token).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials and the file they came from (for error messages).
#[derive(Debug, Clone)]
pub struct FoundCredentials {
    pub credentials: Credentials,
    pub file: PathBuf,
}

/// An auth file that cannot be read or understood.
#[derive(Debug, thiserror::Error)]
#[error("registry auth file {}: {reason}", file.display())]
pub struct AuthFileError {
    pub file: PathBuf,
    pub reason: String,
}

/// The files searched, in order, when no file is given:
/// `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`,
/// `~/.docker/config.json`, `$XDG_RUNTIME_DIR/containers/auth.json`.
pub fn default_auth_files(env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(file) = env("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(file));
    }
    if let Some(dir) = env("DOCKER_CONFIG") {
        files.push(Path::new(&dir).join("config.json"));
    }
    if let Some(home) = env("HOME") {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    if let Some(runtime) = env("XDG_RUNTIME_DIR") {
        files.push(Path::new(&runtime).join("containers/auth.json"));
    }
    files
}

/// The first entry for `registry` in `files`. Files that do not exist are
/// skipped; one that exists but cannot be read or parsed is an error.
pub fn find(registry: &str, files: &[PathBuf]) -> Result<Option<FoundCredentials>, AuthFileError> {
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(AuthFileError {
                    file: file.clone(),
                    reason: error.to_string(),
                });
            }
        };
        let found = lookup(&text, registry).map_err(|reason| AuthFileError {
            file: file.clone(),
            reason,
        })?;
        if let Some(credentials) = found {
            return Ok(Some(FoundCredentials {
                credentials,
                file: file.clone(),
            }));
        }
    }
    Ok(None)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The credentials for `registry` in one file's text.
pub fn lookup(text: &str, registry: &str) -> Result<Option<Credentials>, String> {
    let file: AuthFile =
        serde_json::from_str(text).map_err(|error| format!("not a docker config.json: {error}"))?;
    let entry = file
        .auths
        .iter()
        .find(|(key, _)| names_registry(key, registry))
        .map(|(_, entry)| entry);
    let Some(entry) = entry else {
        if file
            .cred_helpers
            .keys()
            .any(|key| names_registry(key, registry))
            || file.creds_store.is_some()
        {
            tracing::warn!(
                registry,
                "the auth file names a credential helper; helpers are not run, pulling anonymously"
            );
        }
        return Ok(None);
    };
    let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if !auth.is_empty() => decode_auth(auth)?,
        (_, Some(username), Some(password)) => (username.clone(), password.clone()),
        _ if entry.identitytoken.is_some() => {
            tracing::warn!(
                registry,
                "the auth file has only an identity token for the registry; not supported, pulling anonymously"
            );
            return Ok(None);
        }
        _ => {
            return Err(format!(
                "the entry for {registry} has neither auth nor username/password"
            ));
        }
    };
    Ok(Some(Credentials {
        username,
        password: password.into(),
    }))
}

/// `base64(user:password)` split at the first colon.
fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| "an auth value is not base64".to_owned())?;
    let text = String::from_utf8(bytes).map_err(|_| "an auth value is not UTF-8".to_owned())?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| "an auth value is not user:password".to_owned())?;
    Ok((user.to_owned(), password.to_owned()))
}

/// Whether an `auths` key (`host[:port]`, possibly with a scheme and a
/// path, as `docker login` writes them) names `registry`. Docker Hub goes
/// by several names.
fn names_registry(key: &str, registry: &str) -> bool {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    const HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
    host.eq_ignore_ascii_case(registry) || (HUB.contains(&host) && HUB.contains(&registry))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn auth_values_and_plain_fields_are_read() {
        let text = format!(
            r#"{{"auths": {{
                "ghcr.io": {{"auth": "{}"}},
                "127.0.0.1:5000": {{"username": "u", "password": "p"}}
            }}}}"#,
            b64("bot:tok:en")
        );
        let ghcr = lookup(&text, "ghcr.io").unwrap().unwrap();
        assert_eq!(ghcr.username, "bot");
        assert_eq!(ghcr.password.expose_secret(), "tok:en");
        let local = lookup(&text, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.expose_secret()),
            ("u", "p")
        );
        assert!(lookup(&text, "quay.io").unwrap().is_none());
        assert!(
            lookup(&text, "127.0.0.1").unwrap().is_none(),
            "port matters"
        );
    }

    #[test]
    fn docker_hub_keys_match_docker_io() {
        let text = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#,
            b64("a:b")
        );
        assert!(lookup(&text, "docker.io").unwrap().is_some());
        assert!(lookup(&text, "registry-1.docker.io").unwrap().is_some());
    }

    #[test]
    fn unusable_files_say_why() {
        assert!(
            lookup("{", "x")
                .unwrap_err()
                .contains("not a docker config.json")
        );
        let bad = r#"{"auths": {"x": {"auth": "%%%"}}}"#;
        assert!(lookup(bad, "x").unwrap_err().contains("base64"));
        let no_colon = format!(r#"{{"auths": {{"x": {{"auth": "{}"}}}}}}"#, b64("nocolon"));
        assert!(
            lookup(&no_colon, "x")
                .unwrap_err()
                .contains("user:password")
        );
        let helper_only = r#"{"credHelpers": {"x": "gcloud"}}"#;
        assert!(lookup(helper_only, "x").unwrap().is_none());
    }

    #[test]
    fn default_files_follow_the_documented_order() {
        let env = |name: &str| {
            Some(OsString::from(match name {
                "REGISTRY_AUTH_FILE" => "/a/auth.json",
                "DOCKER_CONFIG" => "/d",
                "HOME" => "/home/u",
                "XDG_RUNTIME_DIR" => "/run/user/1",
                _ => return None,
            }))
        };
        assert_eq!(
            default_auth_files(env),
            [
                "/a/auth.json",
                "/d/config.json",
                "/home/u/.docker/config.json",
                "/run/user/1/containers/auth.json"
            ]
            .map(PathBuf::from)
        );
        assert!(default_auth_files(|_| None).is_empty());
    }

    #[test]
    fn the_first_file_with_an_entry_wins_and_missing_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.json");
        let full = dir.path().join("full.json");
        std::fs::write(&empty, r#"{"auths": {}}"#).unwrap();
        std::fs::write(
            &full,
            r#"{"auths": {"r": {"username": "u", "password": "p"}}}"#,
        )
        .unwrap();
        let files = [dir.path().join("missing.json"), empty, full.clone()];
        let found = find("r", &files).unwrap().unwrap();
        assert_eq!(found.file, full);
        std::fs::write(&files[1], "{").unwrap();
        assert!(find("r", &files).is_err(), "a broken file is not skipped");
    }
}
