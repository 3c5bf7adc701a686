//! Figures about a workflow run that the demo, the end-to-end benchmark and
//! the fault suite report: the critical path of a workflow (the fastest it
//! could finish with unlimited runners and no overhead), latency
//! percentiles, and what a finished run looked like. Pure functions.

use std::collections::HashMap;
use std::time::Duration;

use crate::github::model::{Step, WorkflowSpec};

/// How long a job's steps take when nothing else does: the sum of its
/// `Sleep` steps (a `Run` or `Fail` step is taken as instant).
pub fn job_duration(steps: &[Step]) -> Duration {
    steps
        .iter()
        .map(|step| match step {
            Step::Sleep { ms } => Duration::from_millis(*ms),
            _ => Duration::ZERO,
        })
        .sum()
}

/// The workflow's critical path: the longest chain of `needs:` by job
/// duration, i.e. its makespan with unlimited runners that start at once.
/// Jobs whose needs name no job of the workflow start at zero.
pub fn critical_path(spec: &WorkflowSpec) -> Duration {
    let by_name: HashMap<&str, &crate::github::model::JobSpec> = spec
        .jobs
        .iter()
        .map(|job| (job.name.as_str(), job))
        .collect();
    let mut finish: HashMap<&str, Duration> = HashMap::new();
    fn finish_of<'a>(
        name: &'a str,
        by_name: &HashMap<&'a str, &'a crate::github::model::JobSpec>,
        finish: &mut HashMap<&'a str, Duration>,
        depth: usize,
    ) -> Duration {
        if let Some(done) = finish.get(name) {
            return *done;
        }
        let Some(job) = by_name.get(name) else {
            return Duration::ZERO;
        };
        // A cycle cannot run on GitHub; stop rather than recurse forever.
        if depth > by_name.len() {
            return Duration::ZERO;
        }
        let start = job
            .needs
            .iter()
            .map(|need| finish_of(need, by_name, finish, depth + 1))
            .max()
            .unwrap_or(Duration::ZERO);
        let done = start + job_duration(&job.steps);
        finish.insert(name, done);
        done
    }
    spec.jobs
        .iter()
        .map(|job| finish_of(&job.name, &by_name, &mut finish, 0))
        .max()
        .unwrap_or(Duration::ZERO)
}

/// p50, p99 and max of `samples` (nearest-rank), or `None` when empty.
pub fn percentiles(samples: &[Duration]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = |p: f64| {
        let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    Some(Percentiles {
        p50: rank(0.50),
        p99: rank(0.99),
        max: *sorted.last().expect("not empty"),
        count: sorted.len(),
    })
}

/// Nearest-rank percentiles of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub count: usize,
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} s, p99 {:.2} s, max {:.2} s (n = {})",
            self.p50.as_secs_f64(),
            self.p99.as_secs_f64(),
            self.max.as_secs_f64(),
            self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::model::JobSpec;

    fn sleep(ms: u64) -> Vec<Step> {
        vec![Step::Sleep { ms }]
    }

    #[test]
    fn the_critical_path_is_the_longest_chain_of_needs() {
        // a(1s) -> b(2s) -> d(1s); a -> c(5s); e(3s) alone.
        let spec = WorkflowSpec::new(
            "w",
            vec![
                JobSpec::new("a", &["slurm"]).steps(sleep(1000)),
                JobSpec::new("b", &["slurm"])
                    .needs(&["a"])
                    .steps(sleep(2000)),
                JobSpec::new("c", &["slurm"])
                    .needs(&["a"])
                    .steps(sleep(5000)),
                JobSpec::new("d", &["slurm"])
                    .needs(&["b"])
                    .steps(sleep(1000)),
                JobSpec::new("e", &["slurm"]).steps(sleep(3000)),
            ],
        );
        assert_eq!(critical_path(&spec), Duration::from_secs(6));
    }

    #[test]
    fn a_fan_out_takes_as_long_as_one_job() {
        let spec = WorkflowSpec::fan_out("m", 70, &["slurm"], sleep(1000));
        assert_eq!(critical_path(&spec), Duration::from_secs(1));
        assert_eq!(
            critical_path(&WorkflowSpec::new("empty", vec![])),
            Duration::ZERO
        );
    }

    #[test]
    fn only_sleeps_take_time() {
        let steps = vec![
            Step::Sleep { ms: 250 },
            Step::Run {
                command: "true".into(),
            },
            Step::Sleep { ms: 750 },
        ];
        assert_eq!(job_duration(&steps), Duration::from_secs(1));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(&samples).unwrap();
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        let one = percentiles(&[Duration::from_secs(2)]).unwrap();
        assert_eq!(
            (one.p50, one.p99, one.max),
            (
                Duration::from_secs(2),
                Duration::from_secs(2),
                Duration::from_secs(2)
            )
        );
        assert!(percentiles(&[]).is_none());
    }
}
