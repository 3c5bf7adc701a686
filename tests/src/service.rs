//! A slurm-actions binary run as a real process by a test or the demo:
//! started from a recipe so it can be killed (SIGKILL, a crash), stopped
//! (SIGTERM, a deploy) and started again with the same flags; every start's
//! stderr goes to its own log file. Dropping it kills the process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::eventually::eventually_blocking;

/// Where the workspace's binaries are: `$GHA_BIN_DIR`, else the directory
/// of the running test executable's profile (`target/<profile>`), which
/// `cargo test --workspace` fills with every binary of the workspace.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GHA_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test>-<hash>
    let deps = exe.parent().expect("deps dir");
    if deps.file_name().is_some_and(|name| name == "deps") {
        deps.parent().expect("profile dir").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// The path of workspace binary `name`, or an error saying how to build it.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir().join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build the workspace's binaries first (`cargo build --workspace --bins`, \
         or `cargo test --workspace`), or point GHA_BIN_DIR at them",
        path.display()
    );
    Ok(path)
}

/// One service process and how to start it again.
pub struct Service {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    logs: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Service {
    /// A service called `name` (log files `<logs>/<name>.<n>.log`), not
    /// started yet.
    pub fn new(name: &str, program: &Path, logs: &Path) -> Self {
        Self {
            name: name.into(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            logs: logs.to_path_buf(),
            child: None,
            starts: 0,
        }
    }

    /// Adds arguments to every start.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for every start (the rest of the
    /// environment is the test's, less `GHA_*`).
    pub fn env(&mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> &mut Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts it (again); an already running process is killed first.
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.starts += 1;
        std::fs::create_dir_all(&self.logs)?;
        let log = std::fs::File::create(self.log_path(self.starts))
            .with_context(|| format!("creating {}'s log", self.name))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GHA_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = command
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL: a crash. Nothing of the process's own cleanup runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then up to `grace` for it to exit (SIGKILL after that).
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = eventually_blocking("the service to exit", grace, || {
            child.try_wait().ok().flatten()
        });
        match exited {
            Ok(status) => Some(status),
            Err(_) => {
                let _ = child.kill();
                child.wait().ok()
            }
        }
    }

    /// Whether it has exited on its own, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGSTOP / SIGCONT: a process that is alive but does nothing.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("not running")?;
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.logs.join(format!("{}.{start}.log", self.name))
    }

    /// Everything every start of it logged, in order.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|start| std::fs::read_to_string(self.log_path(start)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && self.starts > 0 {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(30).collect();
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}
