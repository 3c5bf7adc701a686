//! From a job's `runs-on` labels to a pool and its exact `sbatch` arguments.
//!
//! Labels match case-insensitively. Sized labels (`cpu-8`, `mem-32g`,
//! `gpu-1`, `time-2h`) and the policy's implicit labels (`self-hosted`,
//! `linux`, `x64`) are set aside; the remaining labels must all be in a
//! pool's label set. Among the pools that cover them, the one with the
//! fewest extra labels (implicit ones not counted) wins, then the first in
//! the file. Sizes never change
//! the pool: they adjust its request within its bounds, or the job is
//! refused.

use std::collections::{BTreeMap, BTreeSet};

use gha_proto::v1::Placement;

use super::sizes::{Resource, SizedLabel, sized_label};
use super::{Decision, Policy, Pool, Refusal};

impl Policy {
    /// Places a job with these `runs-on` labels, from `repository`
    /// (`owner/name`; `None` skips the allow-list check).
    pub fn place(&self, labels: &[String], repository: Option<&str>) -> Result<Decision, Refusal> {
        if let Some(repository) = repository {
            self.check_allowed(repository)?;
        }
        let mut sizes: BTreeMap<Resource, SizedLabel> = BTreeMap::new();
        let mut sized_labels = BTreeSet::new();
        let mut plain = BTreeSet::new();
        let labels: Vec<&str> = labels
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        for label in labels.iter().copied() {
            if let Some(sized) = sized_label(label) {
                sized_labels.insert(label.to_ascii_lowercase());
                if let Some(seen) = sizes.get(&sized.resource)
                    && seen.amount != sized.amount
                {
                    return Err(Refusal::ConflictingSizes {
                        resource: sized.resource.to_string(),
                        first: seen.label.clone(),
                        second: sized.label,
                    });
                }
                sizes.insert(sized.resource, sized);
                continue;
            }
            let label = label.to_ascii_lowercase();
            if !self.implicit_labels.contains(&label) {
                plain.insert(label);
            }
        }
        let pool = self
            .pools
            .iter()
            .filter(|pool| plain.is_subset(&pool.labels))
            .min_by_key(|pool| self.own_labels(pool).count() - plain.len())
            .ok_or_else(|| Refusal::NoPool {
                labels: labels.join(", "),
            })?;
        let mut decision = decide(pool, &sizes)?;
        decision.runner_labels = self
            .own_labels(pool)
            .cloned()
            .chain(sized_labels)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(decision)
    }

    /// The pool's labels other than the implicit ones: what makes it
    /// specific.
    fn own_labels<'p>(&'p self, pool: &'p Pool) -> impl Iterator<Item = &'p String> {
        pool.labels
            .iter()
            .filter(|label| !self.implicit_labels.contains(*label))
    }

    fn check_allowed(&self, repository: &str) -> Result<(), Refusal> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let repo = repository.to_ascii_lowercase();
        let owner = repo
            .split_once('/')
            .map_or(repo.as_str(), |(owner, _)| owner);
        if allowed.orgs.contains(owner) || allowed.repositories.contains(&repo) {
            return Ok(());
        }
        Err(Refusal::RepoNotAllowed {
            repo: repository.to_string(),
            why: "neither its owner is in allowed_orgs nor it in allowed_repositories".into(),
        })
    }
}

/// The request within `pool`'s bounds, and its `sbatch` arguments.
fn decide(pool: &Pool, sizes: &BTreeMap<Resource, SizedLabel>) -> Result<Decision, Refusal> {
    let amount = |resource: Resource| -> Result<u64, Refusal> {
        let bound = match resource {
            Resource::Cpus => pool.cpus,
            Resource::Mem => pool.mem_mib,
            Resource::Gpus => pool.gpus,
            Resource::Time => pool.time_minutes,
        };
        let Some(sized) = sizes.get(&resource) else {
            return Ok(bound.default);
        };
        if sized.amount < bound.min || sized.amount > bound.max {
            return Err(Refusal::OutOfBounds {
                pool: pool.name.clone(),
                label: sized.label.clone(),
                asked: resource.show(sized.amount),
                bounds: bound.show(resource),
            });
        }
        Ok(sized.amount)
    };
    let cpus = amount(Resource::Cpus)?;
    let mem_mib = amount(Resource::Mem)?;
    let gpus = amount(Resource::Gpus)?;
    let minutes = amount(Resource::Time)?;

    let mut gres: Vec<String> = Vec::new();
    if !pool.gres.is_empty() {
        gres.push(pool.gres.clone());
    }
    if gpus > 0 {
        gres.push(match &pool.gpu_type {
            Some(kind) => format!("gpu:{kind}:{gpus}"),
            None => format!("gpu:{gpus}"),
        });
    }
    let gres = gres.join(",");

    let mut args = vec![format!("--partition={}", pool.partition)];
    if !pool.account.is_empty() {
        args.push(format!("--account={}", pool.account));
    }
    if !pool.qos.is_empty() {
        args.push(format!("--qos={}", pool.qos));
    }
    args.push(format!("--cpus-per-task={cpus}"));
    args.push(format!("--mem={mem_mib}M"));
    if !gres.is_empty() {
        args.push(format!("--gres={gres}"));
    }
    args.push(format!("--time={minutes}"));
    if !pool.constraint.is_empty() {
        args.push(format!("--constraint={}", pool.constraint));
    }
    args.extend(pool.extra_args.iter().cloned());

    let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(Decision {
        placement: Placement {
            pool: pool.name.clone(),
            partition: pool.partition.clone(),
            account: pool.account.clone(),
            qos: pool.qos.clone(),
            cpus: narrow(cpus),
            mem_mib,
            gres,
            time_limit_minutes: narrow(minutes),
            constraint: pool.constraint.clone(),
            image: pool.image.clone(),
            runtime: pool.runtime.to_string(),
        },
        sbatch_args: args,
        runtime_options: pool.runtime_options.clone(),
        runner_labels: Vec::new(),
    })
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
