//! Checks every slurm-actions binary must pass: it answers `--help` and
//! `--version`, and a subcommand it does not implement yet exits non-zero
//! saying so rather than pretending to work.

use std::process::{Command, Output};

/// `sysexits.h` `EX_UNAVAILABLE`, what an unimplemented subcommand exits with.
pub const EX_UNAVAILABLE: i32 = 69;
/// `sysexits.h` `EX_USAGE`, what a bad configuration exits with.
pub const EX_USAGE: i32 = 64;

/// Runs `binary` with `args` and no inherited GHA_* configuration.
pub fn run(binary: &str, args: &[&str]) -> Output {
    let mut command = Command::new(binary);
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GHA_") {
            command.env_remove(key);
        }
    }
    command
        .output()
        .unwrap_or_else(|err| panic!("running {binary}: {err}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `--help` succeeds and names each subcommand; `--version` prints
/// `<name> <version>`.
pub fn assert_help_and_version(binary: &str, name: &str, subcommands: &[&str]) {
    let help = run(binary, &["--help"]);
    assert!(
        help.status.success(),
        "{name} --help: {}",
        text(&help.stderr)
    );
    let help = text(&help.stdout);
    for subcommand in subcommands {
        assert!(
            help.contains(subcommand),
            "{name} --help lacks {subcommand}:\n{help}"
        );
    }
    let version = run(binary, &["--version"]);
    assert!(version.status.success());
    assert_eq!(
        text(&version.stdout).trim(),
        format!("{name} {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `args` exits `EX_UNAVAILABLE` and says it is not implemented yet.
pub fn assert_unimplemented(binary: &str, args: &[&str]) {
    let output = run(binary, args);
    assert_eq!(
        output.status.code(),
        Some(EX_UNAVAILABLE),
        "{binary} {args:?}: {output:?}"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("not implemented yet"), "{stderr}");
}

/// `args` exits `EX_USAGE` and its message contains `mentions`.
pub fn assert_config_error(binary: &str, args: &[&str], mentions: &str) {
    let output = run(binary, args);
    assert_eq!(
        output.status.code(),
        Some(EX_USAGE),
        "{binary} {args:?}: {output:?}"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains(mentions), "{stderr}");
}
