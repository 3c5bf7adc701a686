//! The fake runner's `run.sh` and `run-helper.sh.template` behave as the
//! real runner's (actions/runner `src/Misc/layoutroot/`): exit codes,
//! restarts, the root check, a read-only root, and signals with and
//! without `RUNNER_MANUALLY_TRAP_SIG`. The listener here is a stub script
//! that records its calls and exits with the code it is told, so each rule
//! of the scripts is seen alone; `bwrap` sets the uid and makes the root
//! read-only whoever runs the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use gha_testkit::eventually_blocking;
use gha_testkit::fake_runner::layout;

const DEADLINE: Duration = Duration::from_secs(20);

/// The stub listener: logs `call <args>` and its pid, then exits with the
/// n-th word of `$STUB_CODES` on its n-th call (0 past the list). With
/// `STUB_WAIT=1` it waits for a signal instead and logs which one came.
const STUB: &str = r#"#!/bin/bash
log="$(dirname "$0")/../stub.log"
echo "call $*" >> "$log"
echo "pid $$" >> "$log"
n=$(grep -c '^call' "$log")
if [ "${STUB_WAIT:-0}" = 1 ]; then
    trap 'echo got INT >> "$log"; exit 0' INT
    trap 'echo got TERM >> "$log"; exit 0' TERM
    echo waiting >> "$log"
    while :; do sleep 0.05; done
fi
code=$(echo "$STUB_CODES" | cut -d' ' -f"$n")
exit "${code:-0}"
"#;

/// A runner root with the real scripts and the stub listener.
struct Stubbed {
    dir: tempfile::TempDir,
}

impl Stubbed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join("stub");
        std::fs::write(&stub, STUB).unwrap();
        layout::install(&dir.path().join("runner"), &stub).unwrap();
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("runner")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root().join("stub.log")).unwrap_or_default()
    }

    fn calls(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter_map(|line| line.strip_prefix("call "))
            .map(str::to_owned)
            .collect()
    }

    /// `run.sh` with `args` as uid 1001 (or `uid`) in a user namespace, the
    /// root read-write (or read-only), in the root's directory.
    fn command(&self, uid: u32, read_only: bool, args: &[&str]) -> Command {
        let root = self.root();
        let root = root.to_str().unwrap();
        let mut command = Command::new("bwrap");
        command
            .args([
                "--unshare-user",
                "--uid",
                &uid.to_string(),
                "--gid",
                &uid.to_string(),
            ])
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
            .args([if read_only { "--ro-bind" } else { "--bind" }, root, root])
            .args(["--chdir", root, "--die-with-parent", "--"])
            .arg(format!("{root}/run.sh"))
            .args(args)
            .env_remove("RUNNER_MANUALLY_TRAP_SIG")
            .env_remove("RUNNER_ALLOW_RUNASROOT")
            .env_remove("ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, codes: &str, envs: &[(&str, &str)]) -> Output {
        self.command(1001, false, &["--once", "x"])
            .env("STUB_CODES", codes)
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn run_sh_exits_0_for_every_listener_code_but_the_restart_and_deprecation_ones() {
    for (code, message) in [
        ("0", "Runner listener exit with 0 return code"),
        ("1", "Runner listener exit with terminated error"),
        ("5", "Runner listener exit with Session Conflict error"),
        ("7", "Exiting with unknown error code: 7"),
        ("9", "Exiting with unknown error code: 9"),
    ] {
        let stubbed = Stubbed::new();
        let output = stubbed.run(code, &[]);
        assert_eq!(output.status.code(), Some(0), "listener code {code}");
        let text = stdout(&output);
        assert!(text.contains(message), "code {code}: {text}");
        assert!(text.ends_with("Exiting runner...\n"), "code {code}: {text}");
        assert_eq!(
            stubbed.calls(),
            ["run --once x"],
            "code {code}: one run, args passed on"
        );
        assert!(stubbed.root().join("run-helper.sh").is_file());
    }
}

#[test]
fn a_deprecated_version_exit_is_passed_on_only_when_asked_for() {
    let stubbed = Stubbed::new();
    let output = stubbed.run(
        "7",
        &[("ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE", "1")],
    );
    assert_eq!(output.status.code(), Some(7), "{}", stdout(&output));
}

#[test]
fn an_update_exit_restarts_the_listener_once_update_finished_appears() {
    for code in ["3", "4"] {
        let stubbed = Stubbed::new();
        // The helper looks for ./update.finished in its working directory.
        std::fs::write(stubbed.root().join("update.finished"), "").unwrap();
        let output = stubbed.run(&format!("{code} 0"), &[]);
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{text}");
        assert!(text.contains("Update finished successfully."), "{text}");
        assert!(text.contains("Restarting runner..."), "{text}");
        assert_eq!(stubbed.calls().len(), 2, "code {code}: restarted once");
        assert!(!stubbed.root().join("update.finished").exists());
    }
}

#[test]
fn uid_0_needs_runner_allow_runasroot_and_the_listener_never_checks() {
    let stubbed = Stubbed::new();
    let output = stubbed.command(0, false, &[]).output().unwrap();
    let text = stdout(&output);
    assert!(
        text.contains("Must not run interactively with sudo"),
        "{text}"
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "run.sh still exits 0: {text}"
    );
    assert!(stubbed.calls().is_empty(), "the listener ran as root");

    let allowed = stubbed
        .command(0, false, &[])
        .env("RUNNER_ALLOW_RUNASROOT", "1")
        .output()
        .unwrap();
    assert_eq!(allowed.status.code(), Some(0));
    assert_eq!(stubbed.calls().len(), 1, "{}", stdout(&allowed));
}

#[test]
fn a_read_only_root_fails_at_the_helper_copy_and_still_exits_0() {
    let stubbed = Stubbed::new();
    let output = stubbed.command(1001, true, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cp: cannot create regular file")
            && stderr.contains("Read-only file system"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stubbed.calls().is_empty(), "the listener ran");
}

#[test]
fn run_sh_through_a_symlink_copies_its_helper_beside_the_real_script() {
    let stubbed = Stubbed::new();
    let link = stubbed.dir.path().join("elsewhere");
    std::fs::create_dir(&link).unwrap();
    std::os::unix::fs::symlink(stubbed.root().join("run.sh"), link.join("run.sh")).unwrap();
    let output = Command::new(link.join("run.sh"))
        .env("RUNNER_ALLOW_RUNASROOT", "1")
        .env_remove("RUNNER_MANUALLY_TRAP_SIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stubbed.root().join("run-helper.sh").is_file());
    assert!(!link.join("run-helper.sh").exists());
}

/// Starts `run.sh` with a listener that waits for a signal; returns once it
/// waits, with the listener's pid.
fn start_waiting(stubbed: &Stubbed, trap: bool) -> (Child, u32) {
    let mut command = stubbed.command(1001, false, &[]);
    command
        .env("STUB_WAIT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if trap {
        command.env("RUNNER_MANUALLY_TRAP_SIG", "1");
    }
    let child = command.spawn().unwrap();
    let pid = eventually_blocking("the listener waiting", DEADLINE, || {
        let log = stubbed.log();
        log.contains("waiting").then(|| {
            log.lines()
                .find_map(|line| line.strip_prefix("pid "))
                .and_then(|pid| pid.parse().ok())
        })?
    })
    .unwrap();
    (child, pid)
}

/// The pid of `run.sh`: the process running `bash .../run.sh` whose parent
/// is `bwrap`'s child (pid namespaces are not unshared here).
fn run_sh_pid(root: &Path) -> u32 {
    let script = format!("{}/run.sh", root.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|b| *b == 0)
                    .any(|arg| arg == script.as_bytes())
                    && !String::from_utf8_lossy(&cmdline).starts_with("bwrap")
            })
        })
        .expect("run.sh is running")
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'))
    })
}

#[test]
fn with_runner_manually_trap_sig_sigterm_reaches_the_listener_as_sigint() {
    let stubbed = Stubbed::new();
    let (mut child, listener) = start_waiting(&stubbed, true);
    kill("-TERM", run_sh_pid(&stubbed.root()));
    let status =
        eventually_blocking("run.sh to exit", DEADLINE, || child.try_wait().unwrap()).unwrap();
    assert!(stubbed.log().contains("got INT"), "{}", stubbed.log());
    assert!(gone(listener));
    // 128 + SIGTERM: the status of the wait the signal interrupted.
    assert_eq!(status.code(), Some(143));
}

#[test]
fn without_it_sigterm_to_run_sh_does_not_reach_the_listener() {
    let stubbed = Stubbed::new();
    let (mut child, listener) = start_waiting(&stubbed, false);
    kill("-TERM", run_sh_pid(&stubbed.root()));
    let status =
        eventually_blocking("run.sh to exit", DEADLINE, || child.try_wait().unwrap()).unwrap();
    assert!(!status.success());
    let log = stubbed.log();
    assert!(!log.contains("got"), "the listener was signalled: {log}");
    assert!(!gone(listener), "the listener died with run.sh");
    kill("-KILL", listener);
}
