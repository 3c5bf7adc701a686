//! A token server for `docker-registry`'s `auth: token` mode: checks basic
//! credentials and issues ES256 JWTs signed by a key generated at test time
//! (with `openssl`), whose self-signed certificate the registry trusts via
//! `rootcertbundle`; the certificate travels in the JWT's `x5c` header.
//!
//! Good credentials get every action asked for. No credentials get `pull`
//! on repositories under [`PUBLIC_PREFIX`] (public images, as on Docker Hub
//! and GHCR) and nothing else (the registry then refuses, as Docker Hub
//! does for a private image). Wrong credentials get 401.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The `service` the registry is configured with and tokens are for.
pub const SERVICE: &str = "gha-test-registry";
/// The `issuer` the registry accepts.
pub const ISSUER: &str = "gha-test-token-issuer";
/// Repositories whose name starts with this are pullable anonymously.
pub const PUBLIC_PREFIX: &str = "public/";
/// How long an issued token is valid.
const TOKEN_LIFETIME_SECS: u64 = 300;

/// A running token server, stopped on drop.
pub struct TokenServer {
    addr: SocketAddr,
    cert_path: PathBuf,
    issued: Arc<AtomicUsize>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

struct Issuer {
    username: String,
    password: String,
    key: jsonwebtoken::EncodingKey,
    /// The certificate, base64 DER, for the `x5c` header.
    cert_der_b64: String,
    issued: Arc<AtomicUsize>,
}

impl TokenServer {
    /// Generates a signing key and certificate in `dir` and starts serving
    /// `GET /token` on a free loopback port.
    pub fn start(dir: &Path, username: &str, password: &str) -> anyhow::Result<Self> {
        let key_path = dir.join("token.key");
        let cert_path = dir.join("token.crt");
        run_openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=gha-test-token-issuer",
            "-keyout",
            &key_path.to_string_lossy(),
            "-out",
            &cert_path.to_string_lossy(),
        ])?;
        let der = run_openssl(&[
            "x509",
            "-in",
            &cert_path.to_string_lossy(),
            "-outform",
            "DER",
        ])?;
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(&key_path)?)
            .context("reading the generated token key")?;
        let issued = Arc::new(AtomicUsize::new(0));
        let issuer = Arc::new(Issuer {
            username: username.to_owned(),
            password: password.to_owned(),
            key,
            cert_der_b64: base64::engine::general_purpose::STANDARD.encode(der),
            issued: Arc::clone(&issued),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("token-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("token server runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("token server listener");
                    let app = axum::Router::new()
                        .route("/token", axum::routing::get(issue))
                        .with_state(issuer);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(stopped.cancelled_owned())
                        .await;
                });
            })?;
        Ok(Self {
            addr,
            cert_path,
            issued,
            stop,
            thread: Some(thread),
        })
    }

    /// The realm URL for the registry's configuration.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The certificate bundle the registry verifies tokens with.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Tokens issued so far (with or without access).
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_openssl(args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl (deploy/local/install-deps installs it)")?;
    if !output.status.success() {
        bail!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// `GET /token?service=..&scope=..[&scope=..]`.
async fn issue(
    State(issuer): State<Arc<Issuer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (authorised, subject) = match basic_credentials(&headers) {
        None => (false, String::new()),
        Some((user, password)) if user == issuer.username && password == issuer.password => {
            (true, user)
        }
        Some(_) => {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(
                    json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}),
                ),
            )
                .into_response();
        }
    };
    let access: Vec<_> = scopes(query.as_deref().unwrap_or_default())
        .into_iter()
        .filter_map(|(kind, name, actions)| {
            let actions: Vec<String> = if authorised {
                actions
            } else if kind == "repository" && name.starts_with(PUBLIC_PREFIX) {
                actions
                    .into_iter()
                    .filter(|action| action == "pull")
                    .collect()
            } else {
                Vec::new()
            };
            (!actions.is_empty()).then(|| json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "iat": now,
        "nbf": now.saturating_sub(10),
        "exp": now + TOKEN_LIFETIME_SECS,
        "jti": uuid::Uuid::new_v4().to_string(),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![issuer.cert_der_b64.clone()]);
    match jsonwebtoken::encode(&header, &claims, &issuer.key) {
        Ok(token) => {
            issuer.issued.fetch_add(1, Ordering::SeqCst);
            axum::Json(json!({"token": token, "expires_in": TOKEN_LIFETIME_SECS})).into_response()
        }
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// `scope=repository:a/b:pull,push` parameters as (type, name, actions).
fn scopes(query: &str) -> Vec<(String, String, Vec<String>)> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .filter_map(|value| {
            let value = percent_decode(value);
            let mut parts = value.splitn(3, ':');
            let kind = parts.next()?.to_owned();
            let name = parts.next()?.to_owned();
            let actions = parts.next()?.split(',').map(str::to_owned).collect();
            Some((kind, name, actions))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, other) => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
