//! Text logs carry ANSI colour codes only on a terminal, and never with
//! `NO_COLOR`: this test binary runs itself as the child that logs, with
//! stderr to a pipe, to a file, and on a pseudo-terminal (`script`).

use std::process::{Command, Stdio};

use gha_runtime::telemetry::{LogFormat, TelemetryArgs, init};

/// Set by the parent: this process is the child that logs.
const CHILD: &str = "GHA_LOG_COLOUR_CHILD";
const LINE: &str = "a line for the colour test";
const ESC: char = '\u{1b}';

/// The child: logs one line at each of two levels, then ends.
#[test]
fn child_logs_a_line() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    init(&TelemetryArgs {
        log_format: LogFormat::Text,
        log: Some("info".into()),
    });
    tracing::info!(field = 1, "{LINE}");
    tracing::warn!("{LINE}, warned");
}

fn child() -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_logs_a_line",
            "--nocapture",
            "--test-threads=1",
            "--color=never",
        ])
        .env(CHILD, "1")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    command
}

#[test]
fn stderr_to_a_pipe_has_no_escape_codes() {
    let output = child().output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains(LINE), "{stderr}");
    assert!(!stderr.contains(ESC), "escape codes in a pipe: {stderr:?}");
}

#[test]
fn stderr_to_a_file_has_no_escape_codes() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let status = child()
        .stdout(Stdio::null())
        .stderr(file.reopen().unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let stderr = std::fs::read_to_string(file.path()).unwrap();
    assert!(stderr.contains(LINE), "{stderr}");
    assert!(!stderr.contains(ESC), "escape codes in a file: {stderr:?}");
}

/// Runs the child on a pseudo-terminal; returns what the terminal showed.
fn on_a_terminal(no_color: Option<&str>) -> String {
    let exe = std::env::current_exe().unwrap();
    let inner = format!(
        "'{}' --exact child_logs_a_line --nocapture --test-threads=1 --color=never",
        exe.display()
    );
    let mut command = Command::new("script");
    command
        .args(["-qec", &inner, "/dev/null"])
        .env(CHILD, "1")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if let Some(value) = no_color {
        command.env("NO_COLOR", value);
    }
    let output = command.output().expect("script(1) from util-linux");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_terminal_gets_colour_unless_no_color_is_set() {
    let coloured = on_a_terminal(None);
    assert!(coloured.contains(LINE), "{coloured}");
    assert!(
        coloured.contains(ESC),
        "no colour on a terminal: {coloured:?}"
    );
    let plain = on_a_terminal(Some("1"));
    assert!(plain.contains(LINE), "{plain}");
    assert!(!plain.contains(ESC), "NO_COLOR=1 ignored: {plain:?}");
}
