//! The Slurm CLI adapter against the real single-node Slurm: submit, list,
//! find, cancel; failures that hide a created job; refusals; and job
//! variables that reach the job but no command line and no `scontrol`.
//!
//! Every job is named `gha-sp<pid>-...` and cancelled when its test ends,
//! so tests sharing this Slurm are not disturbed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use gha_scheduler::slurm::cli::{SlurmCli, SlurmCliConfig};
use gha_scheduler::slurm::{BatchError, BatchSystem, CancelOutcome, SlurmState, Submission};
use gha_testkit::{Slurm, eventually};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

/// Cancels the jobs a test created, whatever its outcome.
struct Jobs {
    slurm: &'static Slurm,
    ids: Mutex<Vec<u64>>,
}

impl Jobs {
    fn new(slurm: &'static Slurm) -> Self {
        Jobs {
            slurm,
            ids: Mutex::new(Vec::new()),
        }
    }

    fn track(&self, id: u64) -> u64 {
        self.ids.lock().unwrap().push(id);
        id
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        let ids: Vec<String> = self
            .ids
            .lock()
            .unwrap()
            .iter()
            .map(u64::to_string)
            .collect();
        if !ids.is_empty() {
            let _ = self.slurm.command("scancel").args(&ids).status();
        }
    }
}

fn slurm() -> &'static Slurm {
    Slurm::shared().expect("the test Slurm")
}

fn config(slurm: &Slurm) -> SlurmCliConfig {
    SlurmCliConfig {
        env: vec![("SLURM_CONF".into(), slurm.conf().display().to_string())],
        ..SlurmCliConfig::default()
    }
}

fn prefix(test: &str) -> String {
    format!("gha-sp{}-{test}-", std::process::id())
}

fn submission(name: &str, extra: &[&str], script: &str) -> Submission {
    let mut placement_args: Vec<String> = [
        "--cpus-per-task=1",
        "--mem=64M",
        "--time=5",
        "--output=/dev/null",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    placement_args.extend(extra.iter().map(|a| a.to_string()));
    Submission {
        name: name.to_string(),
        comment: format!("corr-{name}"),
        placement_args,
        signal_grace_seconds: 10,
        env: Vec::new(),
        secret_env: Vec::new(),
        script: script.to_string(),
        output: "/dev/null".into(),
    }
}

const SLEEPER: &str = "#!/bin/sh\nsleep 300\n";

/// The real program on PATH.
fn real(program: &str) -> PathBuf {
    std::env::var("PATH")
        .unwrap()
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// An executable shell script `body` in `dir`.
fn wrapper(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn submitted_jobs_are_listed_found_and_cancelled_while_pending() {
    let slurm = slurm();
    let jobs = Jobs::new(slurm);
    let cli = SlurmCli::new(config(slurm));
    let prefix = prefix("pending");
    let a = jobs.track(
        cli.submit(&submission(&format!("{prefix}a-1"), &["--hold"], SLEEPER))
            .await
            .unwrap(),
    );
    let b = jobs.track(
        cli.submit(&submission(&format!("{prefix}b-1"), &["--hold"], SLEEPER))
            .await
            .unwrap(),
    );

    let mut listed = cli.list(&prefix).await.unwrap();
    listed.sort_by_key(|job| job.id);
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [a, b]);
    assert_eq!(listed[0].name, format!("{prefix}a-1"));
    assert_eq!(listed[0].comment, format!("corr-{prefix}a-1"));
    assert_eq!(listed[0].state, SlurmState::Pending);
    assert!(cli.list(&self::prefix("nobody")).await.unwrap().is_empty());
    // Restricted to another user, the same query sees none of them.
    let other_user = SlurmCli::new(SlurmCliConfig {
        user: Some("nobody".into()),
        ..config(slurm)
    });
    assert!(other_user.list(&prefix).await.unwrap().is_empty());

    let found = cli.find_by_name(&format!("{prefix}b-1")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, b);
    assert_eq!(found[0].reason, "JobHeldUser");
    assert!(
        cli.find_by_name(&format!("{prefix}b"))
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(cli.cancel(a).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(slurm.job_state(a).unwrap().as_deref(), Some("CANCELLED"));
    // Cancelling an ended job is verified too, and changes nothing.
    assert_eq!(cli.cancel(a).await.unwrap(), CancelOutcome::Cancelled);
    assert_eq!(slurm.job_state(b).unwrap().as_deref(), Some("PENDING"));
    assert_eq!(cli.cancel(b).await.unwrap(), CancelOutcome::Cancelled);
}

#[tokio::test]
async fn a_running_job_is_cancelled_and_verified() {
    let slurm = slurm();
    let jobs = Jobs::new(slurm);
    let cli = SlurmCli::new(config(slurm));
    let name = format!("{}1", prefix("running"));
    let id = jobs.track(cli.submit(&submission(&name, &[], SLEEPER)).await.unwrap());
    let running = eventually("the job runs", Duration::from_secs(60), || async {
        let found = cli.find_by_name(&name).await.ok()?;
        found
            .into_iter()
            .find(|job| job.state == SlurmState::Running)
    })
    .await
    .unwrap();
    assert_eq!(running.id, id);
    assert!(!running.nodes.is_empty());

    assert_eq!(cli.cancel(id).await.unwrap(), CancelOutcome::Cancelled);
    let state = slurm.job_state(id).unwrap();
    assert_eq!(state.as_deref(), Some("CANCELLED"), "{state:?}");
}

#[tokio::test]
async fn cancelling_an_id_slurm_does_not_know_is_unknown() {
    let cli = SlurmCli::new(config(slurm()));
    assert_eq!(
        cli.cancel(4_000_000_000).await.unwrap(),
        CancelOutcome::Unknown
    );
}

#[tokio::test]
async fn an_sbatch_that_fails_after_creating_the_job_is_transient_and_the_job_is_found() {
    let slurm = slurm();
    let jobs = Jobs::new(slurm);
    let dir = tempfile::tempdir().unwrap();
    let real_sbatch = real("sbatch").display().to_string();
    for (tag, body) in [
        ("exit1", format!("{real_sbatch} \"$@\"\nexit 1")),
        (
            "garbage",
            format!("{real_sbatch} \"$@\" >/dev/null\necho 'Submitted, more or less'"),
        ),
    ] {
        let cli = SlurmCli::new(SlurmCliConfig {
            sbatch: wrapper(dir.path(), tag, &body),
            ..config(slurm)
        });
        let name = format!("{}1", prefix(tag));
        let err = cli
            .submit(&submission(&name, &["--hold"], SLEEPER))
            .await
            .unwrap_err();
        assert!(matches!(err, BatchError::Transient { .. }), "{tag}: {err}");
        let found = cli.find_by_name(&name).await.unwrap();
        assert_eq!(found.len(), 1, "{tag}: {found:?}");
        jobs.track(found[0].id);
        assert_eq!(found[0].comment, format!("corr-{name}"));
    }
}

#[tokio::test]
async fn an_sbatch_that_hangs_is_killed_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let cli = SlurmCli::new(SlurmCliConfig {
        sbatch: wrapper(
            dir.path(),
            "hang",
            &format!("echo $$ > {}\nexec sleep 60", pid_file.display()),
        ),
        timeout: Duration::from_millis(500),
        ..config(slurm())
    });
    let err = cli
        .submit(&submission("gha-sp-hang-1", &[], SLEEPER))
        .await
        .unwrap_err();
    match err {
        BatchError::Transient { detail, .. } => assert!(detail.contains("timed out"), "{detail}"),
        other => panic!("{other}"),
    }
    // The hung command is killed, not left behind (a zombie counts as dead).
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    eventually("the hung sbatch dies", Duration::from_secs(10), || async {
        match std::fs::read_to_string(&stat) {
            Err(_) => Some(()),
            Ok(text) => text.rsplit(") ").next()?.starts_with('Z').then_some(()),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_bad_partition_is_rejected() {
    let slurm = slurm();
    let jobs = Jobs::new(slurm);
    let cli = SlurmCli::new(config(slurm));
    let name = format!("{}1", prefix("rejected"));
    let result = cli
        .submit(&submission(
            &name,
            &["--partition=no-such-partition"],
            SLEEPER,
        ))
        .await;
    if let Ok(id) = result {
        jobs.track(id);
    }
    match result {
        Err(BatchError::Rejected(stderr)) => assert!(stderr.contains("partition"), "{stderr}"),
        other => panic!("{other:?}"),
    }
    assert!(cli.find_by_name(&name).await.unwrap().is_empty());
}

#[tokio::test]
async fn job_variables_reach_the_job_and_no_command_line_or_scontrol() {
    let slurm = slurm();
    let jobs = Jobs::new(slurm);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let secret = format!(
        "claim-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    let plain = format!("plain-{}", std::process::id());
    // A wrapper that records the argv sbatch is given, then runs it.
    let argv_file = dir.path().join("argv");
    let sbatch = wrapper(
        dir.path(),
        "sbatch",
        &format!(
            "printf '%s\\n' \"$@\" > {}\nexec {} \"$@\"",
            argv_file.display(),
            real("sbatch").display()
        ),
    );
    let cli = SlurmCli::new(SlurmCliConfig {
        sbatch,
        ..config(slurm)
    });
    let script = format!(
        "#!/bin/sh\n\
         printf %s \"$GHA_TEST_SECRET\" | sha256sum | cut -d' ' -f1 > {out}/secret.tmp\n\
         printf %s \"$GHA_TEST_PLAIN\" > {out}/plain\n\
         env | cut -d= -f1 | sort > {out}/names\n\
         mv {out}/secret.tmp {out}/secret.sha256\n",
        out = out.display()
    );
    let mut job = submission(&format!("{}1", prefix("secret")), &[], &script);
    job.env = vec![("GHA_TEST_PLAIN".into(), plain.clone())];
    job.secret_env = vec![("GHA_TEST_SECRET".into(), SecretString::from(secret.clone()))];
    let id = jobs.track(cli.submit(&job).await.unwrap());

    let argv = std::fs::read_to_string(&argv_file).unwrap();
    assert!(
        argv.contains("--export=GHA_TEST_PLAIN,GHA_TEST_SECRET\n"),
        "{argv}"
    );
    assert!(!argv.contains(&secret) && !argv.contains(&plain), "{argv}");

    let sha_file = out.join("secret.sha256");
    let seen = eventually(
        "the job writes its digest",
        Duration::from_secs(60),
        || async { std::fs::read_to_string(&sha_file).ok() },
    )
    .await
    .unwrap();
    assert_eq!(seen.trim(), hex::encode(Sha256::digest(secret.as_bytes())));
    assert_eq!(std::fs::read_to_string(out.join("plain")).unwrap(), plain);
    // Only the named variables (and Slurm's own) reach the job.
    let names = std::fs::read_to_string(out.join("names")).unwrap();
    assert!(names.lines().any(|n| n == "GHA_TEST_SECRET"), "{names}");
    assert!(!names.lines().any(|n| n.starts_with("CARGO")), "{names}");

    let scontrol = slurm
        .command("scontrol")
        .args(["show", "job", "-dd", &id.to_string()])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&scontrol.stdout);
    assert!(shown.contains(&format!("JobId={id}")), "{shown}");
    assert!(
        !shown.contains(&secret) && !shown.contains(&plain),
        "{shown}"
    );
}
