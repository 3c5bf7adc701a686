//! The fake runner laid out as the real runner's release is: a root
//! directory holding `run.sh`, `run-helper.sh.template`, `safe_sleep.sh`
//! and `bin/Runner.Listener` (the `fake-runner` binary itself). The real
//! runner's `config.sh`, `env.sh`, `externals/` and the .NET runtime in
//! `bin/` are not emulated.
//!
//! The scripts (in `layout/` beside this file) behave as the real ones do;
//! their headers say what each matches. The listener finds its root the way
//! the real one does (see [`root_of_listener`]): writes go next to the real
//! `bin/`, so a runner's root must be writable.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `run.sh`, as the runner's users start it.
pub const RUN_SH: &str = include_str!("layout/run.sh");
/// `run-helper.sh.template`, which `run.sh` copies to `run-helper.sh`.
pub const RUN_HELPER_TEMPLATE: &str = include_str!("layout/run-helper.sh.template");
/// `safe_sleep.sh`, the helper's sleep.
pub const SAFE_SLEEP_SH: &str = include_str!("layout/safe_sleep.sh");

/// The listener's path inside a runner root.
pub const LISTENER: &str = "bin/Runner.Listener";

/// The scripts of a runner root, by file name.
const SCRIPTS: [(&str, &str); 3] = [
    ("run.sh", RUN_SH),
    ("run-helper.sh.template", RUN_HELPER_TEMPLATE),
    ("safe_sleep.sh", SAFE_SLEEP_SH),
];

/// Lays a runner out at `root` (created if missing): the scripts, mode
/// 0755, and `bin/Runner.Listener`, a hard link to `listener` where the
/// filesystem allows, else a copy. Never a symlink: the listener's root is
/// where its real path is.
pub fn install(root: &Path, listener: &Path) -> io::Result<()> {
    std::fs::create_dir_all(root.join("bin"))?;
    for (name, text) in SCRIPTS {
        let path = root.join(name);
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    let target = root.join(LISTENER);
    match std::fs::remove_file(&target) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if std::fs::hard_link(listener, &target).is_err() {
        std::fs::copy(listener, &target)?;
    }
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
}

/// The runner root of the listener executable at `exe`: the parent of the
/// directory its real path is in. The real listener is a .NET apphost,
/// which takes its own path from `/proc/self/exe` through `realpath`, and
/// its root is `Assembly.Location`'s directory's parent (actions/runner,
/// `HostContext.GetDirectory(WellKnownDirectory.Root)`): a symlink to the
/// listener, or to its `bin/`, leads back to the linked-to root.
pub fn root_of_listener(exe: &Path) -> io::Result<PathBuf> {
    let real = std::fs::canonicalize(exe)?;
    real.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not inside a bin/ directory", real.display()),
            )
        })
}

/// The `fake-runner` binary that the test run built: `GHA_FAKE_RUNNER` if
/// set, else `fake-runner` in the running test's target directory
/// ([`crate::runner_image::workspace_binary`]).
pub fn fake_runner_binary() -> anyhow::Result<PathBuf> {
    crate::runner_image::workspace_binary("fake-runner", "GHA_FAKE_RUNNER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_lays_out_the_scripts_and_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let listener = dir.path().join("listener");
        std::fs::write(&listener, "#!/bin/sh\n").unwrap();
        let root = dir.path().join("runner");
        install(&root, &listener).unwrap();
        install(&root, &listener).unwrap();
        for name in [
            "run.sh",
            "run-helper.sh.template",
            "safe_sleep.sh",
            LISTENER,
        ] {
            let mode = std::fs::metadata(root.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755, "{name}");
        }
        assert!(!root.join(LISTENER).is_symlink());
        assert!(!root.join("run-helper.sh").exists(), "run.sh makes it");
    }

    #[test]
    fn the_root_of_a_symlinked_listener_is_the_real_one() {
        let dir = tempfile::tempdir().unwrap();
        let real_root = dir.path().join("image/home/runner");
        std::fs::create_dir_all(real_root.join("bin")).unwrap();
        std::fs::write(real_root.join(LISTENER), "").unwrap();
        let farm = dir.path().join("farm");
        std::fs::create_dir_all(farm.join("bin")).unwrap();
        std::os::unix::fs::symlink(real_root.join(LISTENER), farm.join(LISTENER)).unwrap();
        let linked_bin = dir.path().join("farm2");
        std::fs::create_dir_all(&linked_bin).unwrap();
        std::os::unix::fs::symlink(real_root.join("bin"), linked_bin.join("bin")).unwrap();

        let real = std::fs::canonicalize(&real_root).unwrap();
        assert_eq!(root_of_listener(&farm.join(LISTENER)).unwrap(), real);
        assert_eq!(root_of_listener(&linked_bin.join(LISTENER)).unwrap(), real);
        assert_eq!(root_of_listener(&real_root.join(LISTENER)).unwrap(), real);
    }
}
