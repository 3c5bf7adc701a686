//! A real image registry per test: Debian's `docker-registry`
//! (distribution 2.8) on a free loopback port, its storage in a temporary
//! directory, optionally behind token authentication ([`token`]) or basic
//! authentication (`htpasswd`); images are built as OCI layouts
//! ([`layout`]) and pushed with `skopeo`; [`fault_proxy`] puts network
//! faults between a client and the registry.
//!
//! The registry picks its own port (`addr: 127.0.0.1:0`) and logs it, so
//! parallel tests never race for one. Dropping the fixture kills the
//! registry and removes its directory; if the test is failing (panicking),
//! the directory is kept and the log's tail printed.

pub mod fault_proxy;
pub mod layout;
pub mod token;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use tempfile::TempDir;

use self::token::TokenServer;
use crate::eventually::eventually_blocking;

pub use fault_proxy::{FaultProxy, Faults};
pub use layout::{BlobRef, BuiltImage, Layer, OciLayout};

/// The registry binary of Debian's `docker-registry` package.
const BINARY: &str = "/usr/bin/docker-registry";
/// How long the registry may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running `docker-registry` owned by one test.
pub struct Registry {
    child: Option<Child>,
    dir: Option<TempDir>,
    port: u16,
    /// The token server when the registry requires token auth.
    token: Option<TokenServer>,
    /// An auth file with the good credentials (token or basic auth).
    auth_file: Option<PathBuf>,
}

/// The one user of [`Registry::start_with_basic_auth`].
pub const BASIC_USER: &str = "ci-bot";
/// Its password.
pub const BASIC_PASSWORD: &str = "s3cret-pass";
/// `BASIC_PASSWORD` bcrypt-hashed (cost 4) for the registry's htpasswd
/// file, computed once: no bcrypt tool or crate is needed at test time.
const BASIC_HTPASSWD: &str = "ci-bot:$2b$04$Ue40/Q2fsos0CcNvZkRTyeblHpim9jHAJJEVJrna/KlZAIgC7BGb.";

/// How the registry authenticates.
enum Auth<'a> {
    Anonymous,
    Token {
        username: &'a str,
        password: &'a str,
    },
    Basic,
}

impl Registry {
    /// A registry that allows anonymous pulls and pushes.
    pub fn start() -> anyhow::Result<Self> {
        Self::launch(Auth::Anonymous, None)
    }

    /// [`Registry::start`] with the storage under `parent` (e.g. on tmpfs
    /// for benchmarks) instead of the system's temporary directory.
    pub fn start_in(parent: &Path) -> anyhow::Result<Self> {
        Self::launch(Auth::Anonymous, Some(parent))
    }

    /// A registry that requires bearer tokens from a token server that
    /// knows one user, `username` with `password`.
    pub fn start_with_token_auth(username: &str, password: &str) -> anyhow::Result<Self> {
        Self::launch(Auth::Token { username, password }, None)
    }

    /// A registry that requires basic credentials (`htpasswd`) on every
    /// request: [`BASIC_USER`] with [`BASIC_PASSWORD`].
    pub fn start_with_basic_auth() -> anyhow::Result<Self> {
        Self::launch(Auth::Basic, None)
    }

    fn launch(auth: Auth<'_>, parent: Option<&Path>) -> anyhow::Result<Self> {
        if !Path::new(BINARY).is_file() {
            bail!("{BINARY} not found: run deploy/local/install-deps");
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix("gha-registry-");
        let dir = match parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .context("creating the registry's directory")?;
        let mut auth_section = String::new();
        let mut token = None;
        let mut user = None;
        match auth {
            Auth::Anonymous => {}
            Auth::Token { username, password } => {
                let server = TokenServer::start(dir.path(), username, password)?;
                auth_section = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    token::SERVICE,
                    token::ISSUER,
                    server.cert_path().display()
                );
                token = Some(server);
                user = Some((username, password));
            }
            Auth::Basic => {
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{BASIC_HTPASSWD}\n"))?;
                auth_section = format!(
                    "auth:\n  htpasswd:\n    realm: gha-test-registry\n    path: {}\n",
                    htpasswd.display()
                );
                user = Some((BASIC_USER, BASIC_PASSWORD));
            }
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\n  secret: gha-test-registry-secret\n{auth_section}",
            storage = dir.path().join("storage").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = File::create(dir.path().join("registry.log"))?;
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {BINARY}"))?;
        let mut registry = Self {
            child: Some(child),
            dir: Some(dir),
            port: 0,
            token,
            auth_file: None,
        };
        let found = eventually_blocking("docker-registry listening", START_DEADLINE, || {
            listening_port(&registry.log())
        });
        registry.port = match found {
            Ok(port) => port,
            Err(err) => bail!("{err}; registry log:\n{}", registry.log()),
        };
        if let Some((username, password)) = user {
            let path = registry.dir().join("auth.json");
            write_auth_file(&path, &registry.host(), username, password)?;
            registry.auth_file = Some(path);
        }
        Ok(registry)
    }

    fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("directory exists until drop")
            .path()
    }

    /// `127.0.0.1:<port>`, the registry part of `docker://` references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// An auth file (docker `config.json` format) with the good
    /// credentials; `None` for an anonymous registry.
    pub fn auth_file(&self) -> Option<&Path> {
        self.auth_file.as_deref()
    }

    /// Tokens the token server issued so far (0 without token auth).
    pub fn tokens_issued(&self) -> usize {
        self.token.as_ref().map_or(0, TokenServer::issued)
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry stores the bytes of blob `digest` (`sha256:...`).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Pushes `tag` of the OCI layout at `layout` as `repository:dest_tag`
    /// with skopeo; `all` copies every image of an index.
    pub fn push(
        &self,
        layout: &Path,
        tag: &str,
        repository: &str,
        dest_tag: &str,
        all: bool,
    ) -> anyhow::Result<()> {
        let extra: &[&str] = if all { &["--all"] } else { &[] };
        self.push_with(layout, tag, repository, dest_tag, extra)
    }

    /// [`Registry::push`] with more `skopeo copy` flags, e.g.
    /// `--format v2s2` to store Docker v2 manifests instead of OCI ones.
    pub fn push_with(
        &self,
        layout: &Path,
        tag: &str,
        repository: &str,
        dest_tag: &str,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let mut command = Command::new("skopeo");
        command.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        command.args(extra);
        if let Some(auth_file) = &self.auth_file {
            command.arg("--dest-authfile").arg(auth_file);
        }
        command
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repository}:{dest_tag}", self.host()));
        let output = command
            .output()
            .context("running skopeo (deploy/local/install-deps installs it)")?;
        if !output.status.success() {
            bail!(
                "skopeo copy to {repository}:{dest_tag} failed: {}\nregistry log:\n{}",
                String::from_utf8_lossy(&output.stderr),
                self.log()
            );
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            let log = std::fs::read_to_string(kept.join("registry.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "docker-registry kept at {} (test failed); last log lines:\n{}",
                kept.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// Writes a docker `config.json` with credentials for `host`.
pub fn write_auth_file(
    path: &Path,
    host: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<()> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let config = serde_json::json!({"auths": {host: {"auth": auth}}});
    std::fs::write(path, serde_json::to_vec_pretty(&config)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The port in `msg="listening on 127.0.0.1:PORT"`.
fn listening_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|line| line.contains("listening on "))?;
    let after = line.split("listening on ").nth(1)?;
    let address = after.split(['"', ' ']).next()?;
    address.rsplit(':').next()?.parse().ok()
}
