//! Which jobs become demand: a job must carry the marker label (default
//! `slurm`), may be limited to an allow-list of labels, and is refused when
//! it builds a fork's pull request (unless allowed). Each refusal has a
//! reason, logged and counted.

use std::collections::BTreeSet;

/// Why a job is not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("job does not carry the marker label {label:?}")]
    MissingMarker { label: String },
    #[error("label {label:?} is not in the allow-list")]
    LabelNotAllowed { label: String },
    #[error("job runs code from a fork's pull request; forks are refused")]
    ForkPullRequest,
}

impl Refusal {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::MissingMarker { .. } => "missing_marker",
            Self::LabelNotAllowed { .. } => "label_not_allowed",
            Self::ForkPullRequest => "fork_pull_request",
        }
    }
}

/// The operator's policy for jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPolicy {
    /// Every job must carry this label (case-insensitive); `None` = any.
    pub marker: Option<String>,
    /// When set, every label of the job must be one of these (or the
    /// marker); case-insensitive.
    pub allowed: Option<BTreeSet<String>>,
    /// Accept jobs building pull requests from forks (their code then runs
    /// on the cluster).
    pub allow_forks: bool,
}

impl Default for JobPolicy {
    fn default() -> Self {
        Self {
            marker: Some("slurm".into()),
            allowed: None,
            allow_forks: false,
        }
    }
}

impl JobPolicy {
    /// Builds a policy; labels are compared case-insensitively, as GitHub
    /// matches them.
    pub fn new(marker: Option<&str>, allowed: Option<&[String]>, allow_forks: bool) -> Self {
        Self {
            marker: marker.map(str::to_ascii_lowercase),
            allowed: allowed.map(|labels| labels.iter().map(|l| l.to_ascii_lowercase()).collect()),
            allow_forks,
        }
    }

    /// Accepts or refuses a job with `labels`, from a fork or not.
    pub fn check(&self, labels: &[String], from_fork: bool) -> Result<(), Refusal> {
        self.check_labels(labels)?;
        self.check_fork(from_fork)
    }

    /// The label half of [`JobPolicy::check`]: it needs no GitHub lookup,
    /// so callers apply it first.
    pub fn check_labels(&self, labels: &[String]) -> Result<(), Refusal> {
        let labels: Vec<String> = labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        if let Some(marker) = &self.marker
            && !labels.contains(marker)
        {
            return Err(Refusal::MissingMarker {
                label: marker.clone(),
            });
        }
        if let Some(allowed) = &self.allowed
            && let Some(label) = labels
                .iter()
                .find(|label| !allowed.contains(*label) && Some(*label) != self.marker.as_ref())
        {
            return Err(Refusal::LabelNotAllowed {
                label: label.clone(),
            });
        }
        Ok(())
    }

    /// The fork half of [`JobPolicy::check`].
    pub fn check_fork(&self, from_fork: bool) -> Result<(), Refusal> {
        if from_fork && !self.allow_forks {
            return Err(Refusal::ForkPullRequest);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn the_marker_label_is_required_case_insensitively() {
        let policy = JobPolicy::default();
        assert_eq!(
            policy.check(&labels(&["self-hosted", "SLURM"]), false),
            Ok(())
        );
        assert_eq!(
            policy.check(&labels(&["ubuntu-latest"]), false),
            Err(Refusal::MissingMarker {
                label: "slurm".into()
            })
        );
    }

    #[test]
    fn an_allow_list_refuses_any_other_label() {
        let allowed = labels(&["self-hosted", "gpu"]);
        let policy = JobPolicy::new(Some("slurm"), Some(&allowed), false);
        assert_eq!(
            policy.check(&labels(&["self-hosted", "slurm", "GPU"]), false),
            Ok(())
        );
        let refusal = policy
            .check(&labels(&["slurm", "bigmem"]), false)
            .unwrap_err();
        assert_eq!(
            refusal,
            Refusal::LabelNotAllowed {
                label: "bigmem".into()
            }
        );
        assert_eq!(refusal.metric_label(), "label_not_allowed");
    }

    #[test]
    fn forks_are_refused_unless_allowed() {
        let job = labels(&["slurm"]);
        assert_eq!(
            JobPolicy::default().check(&job, true),
            Err(Refusal::ForkPullRequest)
        );
        assert_eq!(
            JobPolicy::new(Some("slurm"), None, true).check(&job, true),
            Ok(())
        );
    }

    #[test]
    fn without_a_marker_every_job_passes_the_label_check() {
        let policy = JobPolicy::new(None, None, false);
        assert_eq!(policy.check(&labels(&["anything"]), false), Ok(()));
    }
}
