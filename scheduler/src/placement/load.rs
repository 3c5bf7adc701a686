//! Reading a policy file: parse (unknown keys refused), then validate each
//! field, and report any fault with file, line, column and field path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::file::{DefaultsFile, PolicyFile, PoolFile};
use super::sizes::Resource;
use super::spans::{FieldPath, SpanIndex, line_column};
use super::{Bound, Policy, PolicyError, Pool, Runtime};
use crate::admission::Limits;

/// Labels GitHub gives every self-hosted Linux x64 runner; a job may name
/// them and any pool serves them, unless `defaults.implicit_labels` says
/// otherwise.
pub const DEFAULT_IMPLICIT_LABELS: [&str; 3] = ["self-hosted", "linux", "x64"];

/// The `sbatch` options a pool may add through `sbatch_extra`, and whether
/// each takes a value. Everything else (notably `--export`, `--job-name`,
/// `--comment`, `--signal`, `--output`, `--wrap`, `--uid`) is refused at
/// load time: the submitter owns those.
pub const SBATCH_EXTRA_ALLOWED: [(&str, ExtraKind); 11] = [
    // Deferred start (maintenance windows, off-peak pools).
    ("begin", ExtraKind::Text),
    ("reservation", ExtraKind::Text),
    ("nice", ExtraKind::Integer),
    ("exclusive", ExtraKind::FlagOrText),
    ("licenses", ExtraKind::Text),
    ("tmp", ExtraKind::Text),
    ("exclude", ExtraKind::Text),
    ("nodelist", ExtraKind::Text),
    ("mail-type", ExtraKind::Text),
    ("mail-user", ExtraKind::Text),
    ("wckey", ExtraKind::Text),
];

/// What value an allowed `sbatch` option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    Text,
    Integer,
    /// `true` for the bare flag, or a string value (`--exclusive=user`).
    FlagOrText,
}

impl Policy {
    /// Reads and validates the policy file at `path`.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| PolicyError {
            file: file.clone(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {err}"),
        })?;
        Policy::from_toml(&file, &text)
    }

    /// Validates policy `text`; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Policy, PolicyError> {
        let spans = SpanIndex::new(text);
        let at = |path: FieldPath, message: String| {
            let (line, column) = spans
                .locate(&path)
                .map_or((1, 1), |span| line_column(text, span.start));
            PolicyError {
                file: file.to_string(),
                line,
                column,
                field: path.to_string(),
                message,
            }
        };
        let parsed: PolicyFile = toml::from_str(text).map_err(|err| {
            let offset = err.span().map_or(0, |span| span.start);
            let (line, column) = line_column(text, offset);
            PolicyError {
                file: file.to_string(),
                line,
                column,
                field: spans.path_at(offset).to_string(),
                message: err.message().trim().to_string(),
            }
        })?;
        validate(parsed).map_err(|(path, message)| at(path, message))
    }
}

type Fault = (FieldPath, String);

fn root() -> FieldPath {
    FieldPath::default()
}

fn validate(file: PolicyFile) -> Result<Policy, Fault> {
    let defaults_path = root().key("defaults");
    let default_runtime = match &file.defaults.runtime {
        Some(text) => runtime(text).map_err(|m| (defaults_path.key("runtime"), m))?,
        None => Runtime::Apptainer,
    };
    if file.pool.is_empty() {
        return Err((root(), "the policy defines no [[pool]]".into()));
    }
    let mut pools = Vec::with_capacity(file.pool.len());
    let mut names = BTreeSet::new();
    for (index, pool) in file.pool.into_iter().enumerate() {
        let path = root().key("pool").index(index);
        if !names.insert(pool.name.clone()) {
            return Err((
                path.key("name"),
                format!("pool name {:?} is used twice", pool.name),
            ));
        }
        pools.push(validate_pool(pool, default_runtime, &path)?);
    }
    let lower = |labels: &[String]| labels.iter().map(|l| l.to_ascii_lowercase()).collect();
    let implicit_labels: BTreeSet<String> = match &file.defaults.implicit_labels {
        Some(labels) => lower(labels),
        None => DEFAULT_IMPLICIT_LABELS
            .iter()
            .map(|l| l.to_string())
            .collect(),
    };
    check_reachable(&pools, &implicit_labels)?;
    let limits = limits(&file.defaults, &pools, &defaults_path)?;
    let allowed = match (
        &file.defaults.allowed_orgs,
        &file.defaults.allowed_repositories,
    ) {
        (None, None) => None,
        (orgs, repos) => Some(super::Allowed {
            orgs: lower(orgs.as_deref().unwrap_or_default()),
            repositories: lower(repos.as_deref().unwrap_or_default()),
        }),
    };
    if let Some(orgs) = &file.defaults.allowed_orgs
        && let Some((n, bad)) = orgs
            .iter()
            .enumerate()
            .find(|(_, o)| o.is_empty() || o.contains('/'))
    {
        return Err((
            defaults_path.key("allowed_orgs").index(n),
            format!("{bad:?} is not an org name"),
        ));
    }
    if let Some(repos) = &file.defaults.allowed_repositories
        && let Some((n, bad)) = repos.iter().enumerate().find(|(_, r)| !is_repo(r))
    {
        return Err((
            defaults_path.key("allowed_repositories").index(n),
            format!("{bad:?} is not owner/name"),
        ));
    }
    Ok(Policy {
        pools,
        limits,
        implicit_labels,
        allowed,
    })
}

/// A pool serving exactly the labels of an earlier one would never be
/// chosen: almost certainly a mistake in the file.
fn check_reachable(pools: &[Pool], implicit: &BTreeSet<String>) -> Result<(), Fault> {
    let own =
        |pool: &Pool| -> BTreeSet<String> { pool.labels.difference(implicit).cloned().collect() };
    for (index, pool) in pools.iter().enumerate() {
        if let Some(earlier) = pools[..index].iter().find(|p| own(p) == own(pool)) {
            return Err((
                root().key("pool").index(index).key("labels"),
                format!(
                    "pool {:?} serves the same labels as pool {:?} before it, so it would never be chosen",
                    pool.name, earlier.name
                ),
            ));
        }
    }
    Ok(())
}

fn is_repo(text: &str) -> bool {
    matches!(text.split_once('/'), Some((o, n)) if !o.is_empty() && !n.is_empty() && !n.contains('/'))
}

fn limits(defaults: &DefaultsFile, pools: &[Pool], path: &FieldPath) -> Result<Limits, Fault> {
    for repo in defaults.repo_max_runners.keys() {
        if !is_repo(repo) {
            return Err((
                path.key("repo_max_runners").key(repo),
                format!("{repo:?} is not owner/name"),
            ));
        }
    }
    let lower = |map: &BTreeMap<String, u32>| {
        map.iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), *v))
            .collect()
    };
    Ok(Limits {
        global: defaults.max_runners,
        per_pool: pools
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.max_runners?)))
            .collect(),
        per_repo: defaults.max_runners_per_repo,
        repo_overrides: lower(&defaults.repo_max_runners),
        per_org: defaults.max_runners_per_org,
        org_overrides: lower(&defaults.org_max_runners),
    })
}

fn runtime(text: &str) -> Result<Runtime, String> {
    match text {
        "apptainer" => Ok(Runtime::Apptainer),
        "bwrap" => Ok(Runtime::Bwrap),
        "host" => Ok(Runtime::Host),
        other => Err(format!(
            "unknown runtime {other:?} (apptainer, bwrap or host)"
        )),
    }
}

fn validate_pool(
    pool: PoolFile,
    default_runtime: Runtime,
    path: &FieldPath,
) -> Result<Pool, Fault> {
    let text_field = |key: &str, value: &str, required: bool| -> Result<(), Fault> {
        if required && value.trim().is_empty() {
            return Err((path.key(key), "must not be empty".into()));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err((path.key(key), format!("{value:?} contains whitespace")));
        }
        Ok(())
    };
    text_field("name", &pool.name, true)?;
    text_field("partition", &pool.partition, true)?;
    text_field("account", &pool.account, false)?;
    text_field("qos", &pool.qos, false)?;
    text_field("gres", &pool.gres, false)?;
    text_field("constraint", &pool.constraint, false)?;
    text_field("image", &pool.image, true)?;
    if pool.labels.is_empty() {
        return Err((
            path.key("labels"),
            "a pool serves at least one label".into(),
        ));
    }
    for (n, label) in pool.labels.iter().enumerate() {
        if label.is_empty() || label.contains([',', ' ']) {
            return Err((path.key("labels").index(n), format!("bad label {label:?}")));
        }
        if super::sizes::sized_label(label).is_some() {
            return Err((
                path.key("labels").index(n),
                format!("{label:?} is a sized label; give the pool bounds instead"),
            ));
        }
    }
    let gpus = match &pool.gpus {
        Some(value) => bound(value, Resource::Gpus, &path.key("gpus"))?,
        None => Bound::fixed(0),
    };
    if let Some(gpu_type) = &pool.gpu_type {
        text_field("gpu_type", gpu_type, true)?;
    }
    let runtime = match &pool.runtime {
        Some(text) => runtime(text).map_err(|m| (path.key("runtime"), m))?,
        None => default_runtime,
    };
    Ok(Pool {
        labels: pool.labels.iter().map(|l| l.to_ascii_lowercase()).collect(),
        cpus: bound(&pool.cpus, Resource::Cpus, &path.key("cpus"))?,
        mem_mib: bound(&pool.mem, Resource::Mem, &path.key("mem"))?,
        time_minutes: bound(&pool.time_limit, Resource::Time, &path.key("time_limit"))?,
        gpus,
        gpu_type: pool.gpu_type,
        extra_args: extra_args(&pool.sbatch_extra, &path.key("sbatch_extra"))?,
        name: pool.name,
        partition: pool.partition,
        account: pool.account,
        qos: pool.qos,
        gres: pool.gres,
        constraint: pool.constraint,
        image: pool.image,
        runtime,
        runtime_options: pool.runtime_options,
        max_runners: pool.max_runners,
    })
}

/// `4`, `"32G"`, or `{ default = .., min = .., max = .. }`.
fn bound(value: &toml::Value, resource: Resource, path: &FieldPath) -> Result<Bound, Fault> {
    let bound = match value {
        toml::Value::Table(table) => {
            for key in table.keys() {
                if !["default", "min", "max"].contains(&key.as_str()) {
                    return Err((
                        path.key(key),
                        format!("unknown field `{key}`, expected `default`, `min` or `max`"),
                    ));
                }
            }
            let part = |key: &str| -> Result<u64, Fault> {
                let value = table
                    .get(key)
                    .ok_or_else(|| (path.clone(), format!("missing field `{key}`")))?;
                amount(value, resource, &path.key(key))
            };
            Bound {
                default: part("default")?,
                min: part("min")?,
                max: part("max")?,
            }
        }
        other => Bound::fixed(amount(other, resource, path)?),
    };
    if !(bound.min <= bound.default && bound.default <= bound.max) {
        return Err((
            path.clone(),
            format!("needs min <= default <= max, got {}", bound.show(resource)),
        ));
    }
    if resource != Resource::Mem && bound.max > u64::from(u32::MAX) {
        return Err((
            path.clone(),
            format!("{resource} above {} is not a request", u32::MAX),
        ));
    }
    if resource != Resource::Gpus && bound.min == 0 {
        return Err((path.clone(), format!("{resource} must be at least 1")));
    }
    Ok(bound)
}

fn amount(value: &toml::Value, resource: Resource, path: &FieldPath) -> Result<u64, Fault> {
    let parsed = match value {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(text) => resource.parse(text),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let example = match resource {
            Resource::Cpus | Resource::Gpus => "a count such as 4",
            Resource::Mem => "MiB or a size such as \"512M\", \"32G\"",
            Resource::Time => "minutes or a duration such as \"90m\", \"2h\", \"1d\"",
        };
        (path.clone(), format!("expected {example}, got {value}"))
    })
}

fn extra_args(
    extra: &BTreeMap<String, toml::Value>,
    path: &FieldPath,
) -> Result<Vec<String>, Fault> {
    let mut args = Vec::new();
    for (option, value) in extra {
        let path = path.key(option);
        let Some((_, kind)) = SBATCH_EXTRA_ALLOWED.iter().find(|(name, _)| name == option) else {
            let allowed: Vec<_> = SBATCH_EXTRA_ALLOWED.iter().map(|(n, _)| *n).collect();
            return Err((
                path,
                format!(
                    "sbatch option --{option} is not allowed here (allowed: {})",
                    allowed.join(", ")
                ),
            ));
        };
        let arg = match (kind, value) {
            (ExtraKind::Integer, toml::Value::Integer(n)) => format!("--{option}={n}"),
            (ExtraKind::FlagOrText, toml::Value::Boolean(true)) => format!("--{option}"),
            (ExtraKind::FlagOrText, toml::Value::Boolean(false)) => continue,
            (ExtraKind::Text | ExtraKind::FlagOrText, toml::Value::String(text))
                if !text.is_empty()
                    && !text.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                format!("--{option}={text}")
            }
            (kind, value) => {
                let wanted = match kind {
                    ExtraKind::Text => "a non-empty string without whitespace",
                    ExtraKind::Integer => "an integer",
                    ExtraKind::FlagOrText => "true or a string",
                };
                return Err((path, format!("expected {wanted}, got {value}")));
            }
        };
        args.push(arg);
    }
    Ok(args)
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
