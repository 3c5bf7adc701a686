//! Policy files that do not load say where and why.

use super::super::{Policy, PolicyError};

const GOOD_POOL: &str = r#"
[[pool]]
name = "cpu"
labels = ["slurm"]
partition = "batch"
cpus = { default = 2, min = 1, max = 8 }
mem = "4G"
time_limit = "1h"
image = "/cvmfs/ci/ubuntu"
"#;

fn error(text: &str) -> PolicyError {
    let err = Policy::from_toml("site.toml", text).unwrap_err();
    eprintln!("{err}");
    err
}

fn at(err: &PolicyError) -> (usize, usize, &str) {
    (err.line, err.column, err.field.as_str())
}

#[test]
fn a_good_file_loads_with_defaults_filled_in() {
    let policy = Policy::from_toml("site.toml", GOOD_POOL).unwrap();
    assert_eq!(policy.pools.len(), 1);
    assert_eq!(policy.pools[0].runtime.to_string(), "apptainer");
    assert_eq!(policy.pools[0].gpus.max, 0);
    assert!(policy.implicit_labels.contains("self-hosted"));
    assert_eq!(policy.limits, Default::default());
    assert!(policy.allowed.is_none());
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = error("[defaults]\nmax_runners = \n");
    assert_eq!((err.line, err.file.as_str()), (2, "site.toml"));
    assert!(err.to_string().starts_with("site.toml:2:"), "{err}");
}

#[test]
fn unknown_keys_are_errors_at_their_line() {
    let text = format!("{GOOD_POOL}cpu_count = 4\n");
    let err = error(&text);
    assert_eq!(at(&err), (10, 1, "pool[0].cpu_count"));
    assert!(err.message.contains("unknown field `cpu_count`"), "{err}");
    let err = error("[defaults]\nmax_runner = 4\n");
    assert_eq!(at(&err), (2, 1, "defaults.max_runner"));
}

#[test]
fn wrong_types_name_the_field() {
    let text = format!("[defaults]\nmax_runners = \"ten\"\n{GOOD_POOL}");
    let err = error(&text);
    assert_eq!((err.line, err.field.as_str()), (2, "defaults.max_runners"));
}

#[test]
fn missing_fields_point_at_their_table() {
    let text = GOOD_POOL.replace("partition = \"batch\"\n", "");
    let err = error(&format!("[defaults]\nmax_runners = 3\n{text}"));
    assert!(err.message.contains("missing field `partition`"), "{err}");
    assert_eq!(err.field, "pool[0]");
    assert!(err.line >= 4, "{err}");
}

#[test]
fn validation_errors_point_at_the_field_line() {
    let text = GOOD_POOL.replace("max = 8", "max = 1");
    let err = error(&text);
    assert_eq!(at(&err), (6, 1, "pool[0].cpus"));
    assert!(err.message.contains("min <= default <= max"), "{err}");

    let text = GOOD_POOL.replace("mem = \"4G\"", "mem = \"4 gigs\"");
    let err = error(&text);
    assert_eq!(at(&err), (7, 1, "pool[0].mem"));

    let text = GOOD_POOL.replace("max = 8", "max = \"lots\"");
    let err = error(&text);
    assert_eq!(at(&err), (6, 32, "pool[0].cpus.max"));

    let text = format!("{GOOD_POOL}runtime = \"docker\"\n");
    let err = error(&text);
    assert_eq!(at(&err), (10, 1, "pool[0].runtime"));

    let text = format!(
        "{GOOD_POOL}{}",
        GOOD_POOL
            .replace("name = \"cpu\"", "name = \"cpu2\"")
            .replace("[\"slurm\"]", "[\"Slurm\", \"self-hosted\"]")
    );
    let err = error(&text);
    assert_eq!(at(&err), (13, 1, "pool[1].labels"));
    assert!(err.message.contains("never be chosen"), "{err}");

    let text = format!("{GOOD_POOL}{}", GOOD_POOL.replace("slurm", "other"));
    let err = error(&text);
    assert_eq!(at(&err), (12, 1, "pool[1].name"));
    assert!(err.message.contains("used twice"), "{err}");
}

#[test]
fn sbatch_options_outside_the_allow_list_are_refused() {
    let text = format!("{GOOD_POOL}sbatch_extra = {{ reservation = \"ci\", export = \"ALL\" }}\n");
    let err = error(&text);
    assert_eq!(at(&err), (10, 38, "pool[0].sbatch_extra.export"));
    assert!(err.message.contains("--export is not allowed"), "{err}");
    let text = format!("{GOOD_POOL}[pool.sbatch_extra]\nnice = \"high\"\n");
    let err = error(&text);
    assert_eq!(at(&err), (11, 1, "pool[0].sbatch_extra.nice"));
}

#[test]
fn allow_lists_and_overrides_name_real_repositories() {
    let err = error(&format!(
        "[defaults]\nallowed_repositories = [\"a/b\", \"just-a-name\"]\n{GOOD_POOL}"
    ));
    assert_eq!(at(&err), (2, 32, "defaults.allowed_repositories[1]"));
    let err = error(&format!(
        "[defaults]\nallowed_orgs = [\"a/b\"]\n{GOOD_POOL}"
    ));
    assert_eq!(at(&err), (2, 17, "defaults.allowed_orgs[0]"));
    let err = error(&format!(
        "[defaults.repo_max_runners]\n\"nobody\" = 3\n{GOOD_POOL}"
    ));
    assert_eq!(at(&err), (2, 1, "defaults.repo_max_runners.nobody"));
}

#[test]
fn a_file_without_pools_is_refused() {
    let err = error("[defaults]\nmax_runners = 3\n");
    assert!(err.message.contains("no [[pool]]"), "{err}");
}

#[test]
fn an_unreadable_file_says_so() {
    let err = Policy::load(std::path::Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}
