//! Crash points for the crash-safety tests: with
//! `GHA_SCHEDULER_FAILPOINT=<name>` in the environment, the process aborts
//! (no cleanup, like SIGKILL) the first time it reaches that point. Unset
//! in production; read once.

use std::sync::OnceLock;

/// After the `submitting` record (name + claim hash) is durable, before `sbatch`.
pub const AFTER_SUBMITTING_WRITE: &str = "after-submitting-write";
/// After `sbatch` returned a job id, before the record says so.
pub const AFTER_SBATCH: &str = "after-sbatch";
/// In the middle of a reconcile pass, after its Slurm query.
pub const DURING_RECONCILE: &str = "during-reconcile";

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("GHA_SCHEDULER_FAILPOINT").ok())
        .as_deref()
}

/// Aborts the process if `name` is the armed crash point.
pub fn hit(name: &str) {
    if armed() == Some(name) {
        eprintln!("gha-scheduler: failpoint {name} reached, aborting");
        std::process::abort();
    }
}
