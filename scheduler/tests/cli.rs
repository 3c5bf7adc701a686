//! `gha-scheduler` answers for itself, explains placements, and refuses
//! bad configuration before touching anything.

use std::io::Write as _;

use gha_testkit::cli::{EX_USAGE, assert_config_error, assert_help_and_version, run};
use gha_testkit::paths::repo_root;

const BIN: &str = env!("CARGO_BIN_EXE_gha-scheduler");

fn example_policy() -> String {
    repo_root()
        .join("scheduler/examples/policy.toml")
        .to_str()
        .unwrap()
        .to_string()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_and_version() {
    assert_help_and_version(BIN, "gha-scheduler", &["run", "explain"]);
}

#[test]
fn run_refuses_bad_configuration_before_any_io() {
    let policy = example_policy();
    // No GitHub credentials.
    assert_config_error(BIN, &["run", "--policy", &policy], "--github-token-file");
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "ghp_test\n").unwrap();
    let token = token.path().to_str().unwrap();
    assert_config_error(
        BIN,
        &[
            "run",
            "--policy",
            &policy,
            "--github-token-file",
            token,
            "--name-prefix",
            "bad prefix",
        ],
        "--name-prefix",
    );
    assert_config_error(
        BIN,
        &[
            "run",
            "--policy",
            &policy,
            "--github-token-file",
            token,
            "--job-env",
            "1BAD=x",
        ],
        "not a variable name",
    );
    assert_config_error(
        BIN,
        &[
            "run",
            "--policy",
            "/nonexistent/policy.toml",
            "--github-token-file",
            token,
        ],
        "/nonexistent/policy.toml",
    );
}

#[test]
fn a_missing_policy_file_is_a_config_error() {
    assert_config_error(
        BIN,
        &[
            "explain",
            "--policy",
            "/nonexistent/policy.toml",
            "--labels",
            "slurm",
        ],
        "/nonexistent/policy.toml",
    );
}

#[test]
fn explain_prints_the_pool_and_the_exact_sbatch_arguments() {
    let policy = example_policy();
    let output = run(
        BIN,
        &[
            "explain",
            "--policy",
            &policy,
            "--labels",
            "self-hosted,Linux,slurm,gpu,gpu-2,time-4h",
            "--repo",
            "physics-lab/simulation",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    assert!(text.starts_with("pool: gpu\n"), "{text}");
    assert!(
        text.contains("image: /cvmfs/ci.example.org/images/cuda-12.6\n"),
        "{text}"
    );
    assert!(text.contains("runtime options: --nv\n"), "{text}");
    assert!(
        text.contains("runner labels: gpu,gpu-2,slurm,time-4h\n"),
        "{text}"
    );
    let args: Vec<&str> = text
        .split_once("sbatch")
        .unwrap()
        .1
        .split(['\\', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(
        args,
        [
            "--parsable",
            "--no-requeue",
            "--export=<names of the job's variables>",
            "--job-name=gha-<job id>-<attempt>",
            "--comment=<correlation id>",
            "--signal=B:TERM@<grace seconds>",
            "--output=<--job-output>",
            "--partition=gpu",
            "--account=ci-gpu",
            "--qos=ci-gpu",
            "--cpus-per-task=8",
            "--mem=32768M",
            "--gres=gpu:a100:2",
            "--time=240",
            "--constraint=a100",
        ]
    );
}

#[test]
fn explain_of_a_refused_job_exits_1_with_the_reason() {
    let policy = example_policy();
    let output = run(
        BIN,
        &["explain", "--policy", &policy, "--labels", "slurm,cpu-64"],
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let err = stderr(&output);
    assert!(err.contains("refused (out_of_bounds)"), "{err}");
    assert!(err.contains("cpu-64 asks for 64"), "{err}");
    assert!(stdout(&output).is_empty());

    let output = run(
        BIN,
        &["explain", "--policy", &policy, "--labels", "slurm,windows"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no pool serves labels [slurm, windows]"));

    let output = run(
        BIN,
        &[
            "explain",
            "--policy",
            &policy,
            "--labels",
            "slurm",
            "--repo",
            "stranger/repo",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("repo_not_allowed"));
}

#[test]
fn explain_of_a_malformed_policy_exits_64_with_line_and_field() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "[[pool]]\nname = \"cpu\"\nlabels = [\"slurm\"]\npartition = \"batch\"\n\
         cpus = {{ default = 64, min = 1, max = 32 }}\nmem = \"4G\"\ntime_limit = \"1h\"\n\
         image = \"/cvmfs/x\"\n"
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let output = run(BIN, &["explain", "--policy", path, "--labels", "slurm"]);
    assert_eq!(output.status.code(), Some(EX_USAGE), "{output:?}");
    let err = stderr(&output);
    assert!(err.contains(&format!("{path}:5:1: pool[0].cpus:")), "{err}");

    let empty = tempfile::NamedTempFile::new().unwrap();
    assert_config_error(
        BIN,
        &[
            "explain",
            "--policy",
            empty.path().to_str().unwrap(),
            "--labels",
            "slurm",
        ],
        "no [[pool]]",
    );
}

#[test]
fn the_documented_example_policy_loads() {
    let policy = gha_scheduler::placement::Policy::load(std::path::Path::new(&example_policy()))
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        policy
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["cpu", "gpu", "long"]
    );
    assert_eq!(policy.limits.global, Some(120));
    assert_eq!(policy.limits.repo_overrides["physics-lab/simulation"], 50);
    let long = &policy.pools[2];
    assert_eq!(
        long.extra_args,
        [
            "--mail-type=FAIL",
            "--mail-user=hpc-ops@example.org",
            "--nice=100",
            "--reservation=ci-long"
        ]
    );
}
