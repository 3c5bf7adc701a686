//! The command-line flags that say how registries are reached, for every
//! subcommand that pulls (`unpack`, `serve`): flatten [`RegistryArgs`] in.

use std::path::PathBuf;

use super::RegistryOptions;

/// How to reach registries for `docker://` images.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Docker `config.json` (or containers' `auth.json`) with registry
    /// credentials. Default: `$REGISTRY_AUTH_FILE`,
    /// `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`,
    /// `$XDG_RUNTIME_DIR/containers/auth.json`, the first with an entry.
    #[arg(long, env = "GHA_UNPACKER_REGISTRY_AUTH_FILE")]
    pub registry_auth_file: Option<PathBuf>,

    /// A registry (`host[:port]`) to reach over plain http although it is
    /// not on loopback; repeat, or separate with commas.
    #[arg(
        long = "insecure-registry",
        env = "GHA_UNPACKER_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
}

impl RegistryArgs {
    /// The options every `docker://` source of the process is opened with.
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions {
            auth_file: self.registry_auth_file.clone(),
            insecure_registries: self
                .insecure_registries
                .iter()
                .map(|registry| registry.trim().to_owned())
                .filter(|registry| !registry.is_empty())
                .collect(),
            ..RegistryOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Probe {
        #[command(flatten)]
        registry: RegistryArgs,
    }

    #[test]
    fn flags_become_options() {
        let probe = Probe::try_parse_from([
            "probe",
            "--registry-auth-file",
            "/etc/gha/auth.json",
            "--insecure-registry",
            "reg.site:5000,other.site",
            "--insecure-registry",
            "third",
        ])
        .unwrap();
        let options = probe.registry.options();
        assert_eq!(options.auth_file, Some(PathBuf::from("/etc/gha/auth.json")));
        assert_eq!(
            options.insecure_registries,
            ["reg.site:5000", "other.site", "third"]
        );
        let none = Probe::try_parse_from(["probe"]).unwrap().registry.options();
        assert_eq!(none.auth_file, None);
        assert!(none.insecure_registries.is_empty());
    }
}
