//! Matching and sizing, on a small policy.

use super::super::{Policy, Refusal};

const POLICY: &str = r#"
[defaults]
max_runners = 10

[[pool]]
name = "cpu"
labels = ["slurm"]
partition = "batch"
account = "ci"
cpus = { default = 2, min = 1, max = 16 }
mem = { default = "4G", min = "512M", max = "64G" }
time_limit = { default = "1h", min = "10m", max = "6h" }
image = "/cvmfs/ci/ubuntu-24.04"

[[pool]]
name = "cpu-big"
labels = ["slurm", "big"]
partition = "batch"
cpus = 32
mem = "128G"
time_limit = "6h"
image = "/cvmfs/ci/ubuntu-24.04"
sbatch_extra = { reservation = "ci", exclusive = true, nice = 10 }

[[pool]]
name = "gpu"
labels = ["slurm", "gpu", "cuda"]
partition = "gpu"
qos = "gpu-ci"
cpus = 8
mem = "32G"
gpus = { default = 1, min = 1, max = 4 }
gpu_type = "a100"
gres = "tmpdisk:10240"
time_limit = { default = "2h", min = "10m", max = "1d" }
constraint = "a100"
image = "/cvmfs/ci/cuda-12"
runtime = "bwrap"
runtime_options = ["--nv"]

[[pool]]
name = "gpu-other"
labels = ["slurm", "gpu", "rocm"]
partition = "gpu"
cpus = 8
mem = "32G"
gpus = 1
time_limit = "2h"
image = "/cvmfs/ci/rocm"
"#;

fn policy() -> Policy {
    Policy::from_toml("policy.toml", POLICY).unwrap()
}

fn place(labels: &[&str]) -> Result<super::super::Decision, Refusal> {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    policy().place(&labels, Some("acme/widgets"))
}

#[test]
fn the_least_specific_covering_pool_wins_with_its_defaults() {
    let decision = place(&["self-hosted", "Linux", "x64", "SLURM"]).unwrap();
    assert_eq!(decision.placement.pool, "cpu");
    assert_eq!(
        decision.sbatch_args,
        [
            "--partition=batch",
            "--account=ci",
            "--cpus-per-task=2",
            "--mem=4096M",
            "--time=60"
        ]
    );
    assert_eq!(decision.placement.mem_mib, 4096);
    assert_eq!(decision.placement.time_limit_minutes, 60);
    assert_eq!(decision.placement.runtime, "apptainer");
    assert_eq!(decision.placement.image, "/cvmfs/ci/ubuntu-24.04");
    assert_eq!(decision.runner_labels, ["slurm"]);
}

#[test]
fn extra_labels_pick_the_more_specific_pool_with_its_extra_args() {
    let decision = place(&["slurm", "big"]).unwrap();
    assert_eq!(decision.placement.pool, "cpu-big");
    assert_eq!(
        decision.sbatch_args,
        [
            "--partition=batch",
            "--cpus-per-task=32",
            "--mem=131072M",
            "--time=360",
            "--exclusive",
            "--nice=10",
            "--reservation=ci"
        ]
    );
}

#[test]
fn equally_specific_pools_go_by_file_order() {
    // "gpu" covers {slurm, gpu} with one extra label, as does "gpu-other".
    assert_eq!(place(&["gpu", "slurm"]).unwrap().placement.pool, "gpu");
    assert_eq!(place(&["rocm"]).unwrap().placement.pool, "gpu-other");
}

#[test]
fn sized_labels_adjust_within_bounds_and_need_not_be_pool_labels() {
    let decision = place(&["slurm", "cpu-8", "mem-32g", "time-90m"]).unwrap();
    assert_eq!(decision.placement.pool, "cpu");
    assert_eq!(
        decision.sbatch_args,
        [
            "--partition=batch",
            "--account=ci",
            "--cpus-per-task=8",
            "--mem=32768M",
            "--time=90"
        ]
    );
    // The runner must carry the sized labels, or GitHub never gives it the job.
    assert_eq!(
        decision.runner_labels,
        ["cpu-8", "mem-32g", "slurm", "time-90m"]
    );
    let decision = place(&[" slurm", "MEM-512m", "", "mem-512M", "time-6h"]).unwrap();
    assert_eq!(decision.runner_labels, ["mem-512m", "slurm", "time-6h"]);
    assert_eq!(decision.placement.mem_mib, 512);
    assert_eq!(decision.placement.time_limit_minutes, 360);
}

#[test]
fn gpu_requests_become_gres_beside_the_static_gres() {
    let decision = place(&["gpu", "cuda", "gpu-2", "time-1d"]).unwrap();
    assert_eq!(
        decision.sbatch_args,
        [
            "--partition=gpu",
            "--qos=gpu-ci",
            "--cpus-per-task=8",
            "--mem=32768M",
            "--gres=tmpdisk:10240,gpu:a100:2",
            "--time=1440",
            "--constraint=a100"
        ]
    );
    assert_eq!(decision.placement.gres, "tmpdisk:10240,gpu:a100:2");
    assert_eq!(decision.placement.runtime, "bwrap");
    assert_eq!(decision.runtime_options, ["--nv"]);
}

#[test]
fn requests_outside_the_bounds_are_refused_not_clamped() {
    let refusal = place(&["slurm", "cpu-17"]).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::OutOfBounds {
            pool: "cpu".into(),
            label: "cpu-17".into(),
            asked: "17".into(),
            bounds: "[1, 16] (default 2)".into(),
        }
    );
    assert_eq!(refusal.metric_label(), "out_of_bounds");
    let refusal = place(&["slurm", "time-7h"]).unwrap_err().to_string();
    assert!(refusal.contains("time-7h asks for 7h"), "{refusal}");
    assert!(refusal.contains("[10m, 6h]"), "{refusal}");
    // A fixed pool admits only its own size; a CPU pool no GPU.
    assert!(matches!(
        place(&["slurm", "big", "cpu-16"]),
        Err(Refusal::OutOfBounds { .. })
    ));
    assert!(matches!(
        place(&["slurm", "gpu-1"]),
        Err(Refusal::OutOfBounds { .. })
    ));
    // The fixed size itself is fine.
    assert!(place(&["slurm", "big", "cpu-32"]).is_ok());
}

#[test]
fn conflicting_sizes_are_refused_repeated_ones_are_not() {
    assert!(matches!(
        place(&["slurm", "cpu-4", "cpu-8"]),
        Err(Refusal::ConflictingSizes { .. })
    ));
    assert!(place(&["slurm", "cpu-4", "CPU-4"]).is_ok());
}

#[test]
fn labels_no_pool_covers_are_refused() {
    let refusal = place(&["slurm", "windows"]).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::NoPool {
            labels: "slurm, windows".into()
        }
    );
    assert_eq!(refusal.metric_label(), "no_pool");
    // Look-alikes of sized labels are ordinary labels.
    assert!(matches!(
        place(&["slurm", "cpu-fast"]),
        Err(Refusal::NoPool { .. })
    ));
    // `arm64` is not implicit by default.
    assert!(matches!(
        place(&["slurm", "arm64"]),
        Err(Refusal::NoPool { .. })
    ));
}

#[test]
fn implicit_labels_in_a_pool_do_not_make_it_more_specific() {
    // "cpu" also lists implicit labels: "big" still has one own label more.
    let text = POLICY.replacen(
        "name = \"cpu\"\nlabels = [\"slurm\"]",
        "name = \"cpu\"\nlabels = [\"slurm\", \"self-hosted\", \"linux\"]",
        1,
    );
    let policy = Policy::from_toml("p.toml", &text).unwrap();
    let labels = vec!["slurm".to_string()];
    let decision = policy.place(&labels, None).unwrap();
    assert_eq!(decision.placement.pool, "cpu");
    assert_eq!(decision.runner_labels, ["slurm"]);
}

#[test]
fn only_implicit_labels_go_to_the_smallest_pool() {
    assert_eq!(place(&["self-hosted"]).unwrap().placement.pool, "cpu");
}

#[test]
fn the_allow_list_admits_orgs_and_named_repositories() {
    let text = POLICY.replace(
        "max_runners = 10\n",
        "max_runners = 10\nallowed_orgs = [\"Acme\"]\nallowed_repositories = [\"friends/tool\"]\n",
    );
    let policy = Policy::from_toml("p.toml", &text).unwrap();
    let labels = vec!["slurm".to_string()];
    assert!(policy.place(&labels, Some("ACME/widgets")).is_ok());
    assert!(policy.place(&labels, Some("friends/tool")).is_ok());
    assert!(policy.place(&labels, None).is_ok());
    let refusal = policy.place(&labels, Some("friends/other")).unwrap_err();
    assert_eq!(refusal.metric_label(), "repo_not_allowed");
    // Without an allow-list every repository is welcome.
    assert!(self::policy().place(&labels, Some("anyone/x")).is_ok());
}
