//! The policy file as written: serde types that mirror the TOML exactly
//! (unknown keys refused), before validation turns them into a
//! [`super::Policy`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub defaults: DefaultsFile,
    #[serde(default)]
    pub pool: Vec<PoolFile>,
}

/// `[defaults]`: limits and settings for every pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsFile {
    pub max_runners: Option<u32>,
    pub max_runners_per_repo: Option<u32>,
    pub max_runners_per_org: Option<u32>,
    /// `"owner/name" = cap` overrides of `max_runners_per_repo`.
    #[serde(default)]
    pub repo_max_runners: BTreeMap<String, u32>,
    /// `"owner" = cap` overrides of `max_runners_per_org`.
    #[serde(default)]
    pub org_max_runners: BTreeMap<String, u32>,
    pub runtime: Option<String>,
    /// Labels every pool serves implicitly.
    pub implicit_labels: Option<Vec<String>>,
    pub allowed_orgs: Option<Vec<String>>,
    pub allowed_repositories: Option<Vec<String>>,
}

/// One `[[pool]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    pub name: String,
    pub labels: Vec<String>,
    pub partition: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub qos: String,
    pub cpus: toml::Value,
    pub mem: toml::Value,
    pub time_limit: toml::Value,
    pub gpus: Option<toml::Value>,
    pub gpu_type: Option<String>,
    #[serde(default)]
    pub gres: String,
    #[serde(default)]
    pub constraint: String,
    pub image: String,
    pub runtime: Option<String>,
    #[serde(default)]
    pub runtime_options: Vec<String>,
    pub max_runners: Option<u32>,
    /// `option = value` for allow-listed `sbatch` options.
    #[serde(default)]
    pub sbatch_extra: BTreeMap<String, toml::Value>,
}
