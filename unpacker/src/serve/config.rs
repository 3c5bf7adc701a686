//! Flags of `gha-unpacker serve`, validated into a [`ServeConfig`] before
//! any I/O beyond reading the token file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use gha_runtime::ConfigError;
use gha_runtime::admin::AdminArgs;
use gha_runtime::nats::{NatsArgs, NatsConfig};
use secrecy::SecretString;

use crate::cli::parse_platform;
use crate::image::Platform;
use crate::publish::cvmfs::CvmfsConfig;
use crate::service::Defaults;

/// `gha-unpacker serve` flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub registry: crate::source::registry::RegistryArgs,
    /// Address of the HTTP API.
    #[arg(long, env = "GHA_UNPACKER_LISTEN", default_value = "127.0.0.1:8480")]
    pub listen: SocketAddr,
    /// File with the API's bearer token; several lines = several tokens
    /// accepted (for rotation).
    #[arg(long, env = "GHA_UNPACKER_TOKEN_FILE")]
    pub token_file: PathBuf,
    /// Where to publish: `dir:/srv/images` (a shared directory) or
    /// `cvmfs:<repository>[/<subdir>]` (a CVMFS repository on this
    /// stratum 0).
    #[arg(long, env = "GHA_UNPACKER_PUBLISH")]
    pub publish: String,
    /// Directory for the records of published images (TTLs, answers).
    #[arg(
        long,
        env = "GHA_UNPACKER_STATE_DIR",
        default_value = "/var/lib/gha-unpacker"
    )]
    pub state_dir: PathBuf,
    /// Seconds an image is kept after its last request, when the request
    /// does not say.
    #[arg(long, env = "GHA_UNPACKER_DEFAULT_TTL", default_value_t = 86_400)]
    pub default_ttl: u64,
    /// Seconds between expiry sweeps.
    #[arg(long, env = "GHA_UNPACKER_SWEEP_INTERVAL", default_value_t = 60)]
    pub sweep_interval: u64,
    /// Images unpacked at once.
    #[arg(long, env = "GHA_UNPACKER_MAX_CONCURRENT", default_value_t = 2)]
    pub max_concurrent: usize,
    /// Apply the Apptainer-on-CVMFS fix-ups unless a request says otherwise.
    #[arg(long, env = "GHA_UNPACKER_APPTAINER", default_value_t = true, action = ArgAction::Set)]
    pub apptainer: bool,
    /// Default platform of multi-platform images, `os/arch[/variant]`;
    /// this host's when unset.
    #[arg(long, env = "GHA_UNPACKER_PLATFORM")]
    pub platform: Option<String>,
    /// Directories local sources (`oci:`, `oci-archive:`,
    /// `docker-archive:`) may be read from, comma-separated; none =
    /// `docker://` only.
    #[arg(long, env = "GHA_UNPACKER_LOCAL_SOURCE_DIRS", value_delimiter = ',')]
    pub local_source_dirs: Vec<PathBuf>,
    /// Serve HTTP only: do not consume unpack requests from NATS.
    #[arg(long, env = "GHA_UNPACKER_NO_NATS")]
    pub no_nats: bool,
    #[command(flatten)]
    pub cvmfs: CvmfsArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// How to drive `cvmfs_server` (with `--publish cvmfs:...`).
#[derive(Debug, Clone, Args)]
pub struct CvmfsArgs {
    /// The `cvmfs_server` command, with leading arguments if any
    /// (`sudo -u cvmfs cvmfs_server`), split on whitespace.
    #[arg(
        long,
        env = "GHA_UNPACKER_CVMFS_SERVER",
        default_value = "cvmfs_server"
    )]
    pub cvmfs_server: String,
    /// Where repositories are mounted.
    #[arg(long, env = "GHA_UNPACKER_CVMFS_MOUNT_ROOT", default_value = "/cvmfs")]
    pub cvmfs_mount_root: PathBuf,
    /// Publish with `cvmfs_server ingest` of one tar stream per image
    /// instead of writing inside a transaction.
    #[arg(long, env = "GHA_UNPACKER_CVMFS_INGEST")]
    pub cvmfs_ingest: bool,
    /// Lease only `<repository>/<subdir>` (gateway publishers).
    #[arg(long, env = "GHA_UNPACKER_CVMFS_LEASE_SUBDIR")]
    pub cvmfs_lease_subdir: bool,
    /// Run `cvmfs_server gc -f` after removing images.
    #[arg(long, env = "GHA_UNPACKER_CVMFS_GC")]
    pub cvmfs_gc: bool,
    /// Make each image a nested catalog (`.cvmfscatalog`; `ingest
    /// --catalog`).
    #[arg(long, env = "GHA_UNPACKER_CVMFS_NESTED_CATALOGS", default_value_t = true, action = ArgAction::Set)]
    pub cvmfs_nested_catalogs: bool,
    /// Most images published in one transaction.
    #[arg(long, env = "GHA_UNPACKER_CVMFS_MAX_BATCH", default_value_t = 8)]
    pub cvmfs_max_batch: usize,
}

/// Where images go.
#[derive(Debug, Clone)]
pub enum PublisherConfig {
    Dir { root: PathBuf },
    Cvmfs(CvmfsConfig),
}

/// The validated `serve` configuration.
#[derive(Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Accepted bearer tokens.
    pub tokens: Vec<SecretString>,
    pub publisher: PublisherConfig,
    pub state_dir: PathBuf,
    pub defaults: Defaults,
    pub sweep_interval: Duration,
    pub max_concurrent: usize,
    pub nats: Option<NatsConfig>,
    pub admin_listen: Option<SocketAddr>,
    /// How `docker://` sources are reached (credentials, insecure hosts).
    pub registry: crate::source::registry::RegistryOptions,
}

/// Bearer tokens from `file`, one per non-empty line.
pub fn read_tokens(flag: &str, file: &PathBuf) -> Result<Vec<SecretString>, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|err| ConfigError(format!("{flag} {}: {err}", file.display())))?;
    let tokens: Vec<SecretString> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| SecretString::from(line.to_owned()))
        .collect();
    if tokens.is_empty() {
        return Err(ConfigError(format!(
            "{flag} {}: no token in it",
            file.display()
        )));
    }
    Ok(tokens)
}

fn parse_publisher(text: &str, cvmfs: &CvmfsArgs) -> Result<PublisherConfig, ConfigError> {
    let bad = |why: &str| ConfigError(format!("--publish {text:?}: {why}"));
    if let Some(root) = text.strip_prefix("dir:") {
        let root = PathBuf::from(root);
        if !root.is_absolute() {
            return Err(bad("the directory must be an absolute path"));
        }
        return Ok(PublisherConfig::Dir { root });
    }
    let Some(spec) = text.strip_prefix("cvmfs:") else {
        return Err(bad("expected dir:PATH or cvmfs:REPOSITORY[/SUBDIR]"));
    };
    let (repository, subdir) = spec.split_once('/').unwrap_or((spec, ""));
    if repository.is_empty()
        || repository.starts_with('.')
        || !repository
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad(
            "the repository name is letters, digits, '.', '_' and '-'",
        ));
    }
    let subdir = subdir.trim_end_matches('/');
    if subdir
        .split('/')
        .any(|part| part == ".." || part == "." || (part.is_empty() && !subdir.is_empty()))
    {
        return Err(bad("the subdirectory must be a plain relative path"));
    }
    let server: Vec<String> = cvmfs
        .cvmfs_server
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if server.is_empty() {
        return Err(ConfigError("--cvmfs-server: empty command".into()));
    }
    if cvmfs.cvmfs_max_batch == 0 {
        return Err(ConfigError("--cvmfs-max-batch must be at least 1".into()));
    }
    Ok(PublisherConfig::Cvmfs(CvmfsConfig {
        repository: repository.to_owned(),
        server,
        mount_root: cvmfs.cvmfs_mount_root.clone(),
        subdir: subdir.into(),
        lease_subdir: cvmfs.cvmfs_lease_subdir,
        ingest: cvmfs.cvmfs_ingest,
        gc: cvmfs.cvmfs_gc,
        nested_catalogs: cvmfs.cvmfs_nested_catalogs,
        max_batch: cvmfs.cvmfs_max_batch,
    }))
}

impl ServeArgs {
    /// Checks the flags; reads the token file, nothing else.
    pub fn validate(self) -> Result<ServeConfig, ConfigError> {
        if self.default_ttl == 0 {
            return Err(ConfigError(
                "--default-ttl must be at least 1 second".into(),
            ));
        }
        if self.sweep_interval == 0 {
            return Err(ConfigError(
                "--sweep-interval must be at least 1 second".into(),
            ));
        }
        if let Some(dir) = self.local_source_dirs.iter().find(|d| !d.is_absolute()) {
            return Err(ConfigError(format!(
                "--local-source-dirs {}: must be an absolute path",
                dir.display()
            )));
        }
        if self.max_concurrent == 0 {
            return Err(ConfigError("--max-concurrent must be at least 1".into()));
        }
        let platform = match &self.platform {
            Some(text) => {
                parse_platform(text).map_err(|why| ConfigError(format!("--platform: {why}")))?
            }
            None => Platform::host(),
        };
        let publisher = parse_publisher(&self.publish, &self.cvmfs)?;
        let nats = if self.no_nats {
            None
        } else {
            Some(self.nats.validate()?)
        };
        Ok(ServeConfig {
            registry: self.registry.options(),
            listen: self.listen,
            tokens: read_tokens("--token-file", &self.token_file)?,
            publisher,
            state_dir: self.state_dir,
            defaults: Defaults {
                ttl: Duration::from_secs(self.default_ttl),
                apptainer: self.apptainer,
                platform,
                parallel_layers: 4,
                local_source_dirs: self.local_source_dirs,
            },
            sweep_interval: Duration::from_secs(self.sweep_interval),
            max_concurrent: self.max_concurrent,
            nats,
            admin_listen: self.admin.admin_listen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cvmfs_args() -> CvmfsArgs {
        CvmfsArgs {
            cvmfs_server: "cvmfs_server".into(),
            cvmfs_mount_root: "/cvmfs".into(),
            cvmfs_ingest: false,
            cvmfs_lease_subdir: false,
            cvmfs_gc: false,
            cvmfs_nested_catalogs: true,
            cvmfs_max_batch: 8,
        }
    }

    #[test]
    fn publish_targets_parse() {
        match parse_publisher("cvmfs:images.example.org/ci", &cvmfs_args()).unwrap() {
            PublisherConfig::Cvmfs(config) => {
                assert_eq!(config.repository, "images.example.org");
                assert_eq!(config.subdir, PathBuf::from("ci"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_publisher("dir:/srv/images", &cvmfs_args()).unwrap(),
            PublisherConfig::Dir { .. }
        ));
    }

    #[test]
    fn unsafe_publish_targets_are_refused() {
        for bad in [
            "dir:relative",
            "cvmfs:",
            "cvmfs:../x",
            "cvmfs:repo/../etc",
            "cvmfs:repo//x",
            "s3:bucket",
        ] {
            assert!(parse_publisher(bad, &cvmfs_args()).is_err(), "{bad}");
        }
    }
}
