//! Runner housekeeping on GitHub: the runner of an ended Slurm job is
//! deleted if GitHub still lists it idle, and a periodic sweep deletes our
//! offline, idle runners that no live record owns.

use gha_proto::v1::JobState;
use tracing::{info, warn};

use crate::engine::{Engine, Placer};
use crate::github::GitHubApi;
use crate::slurm::BatchSystem;
use crate::{jit, record};

/// Deletes the runner an ended Slurm job registered, unless it is busy
/// (GitHub removes ephemeral runners after their job itself).
pub(crate) async fn remove_ended<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    state: &JobState,
) {
    let scope = jit::scope(engine.settings.runner_scope, state);
    match engine.github.find_runner(&scope, &state.runner_name).await {
        Ok(Some(runner)) if !runner.busy => {
            if engine.github.delete_runner(&scope, runner.id).await.is_ok() {
                engine.metrics.reconcile_action("runner_deleted");
                info!(job_id = record::job_id(state), runner = %runner.name, "deleted the offline runner of an ended Slurm job");
            }
        }
        Ok(_) => {}
        Err(err) => warn!(runner = %state.runner_name, error = %err, "could not look up runner"),
    }
}

/// Deletes our runners that are offline and idle, in every scope seen,
/// except those of live records (a runner just registered is offline until
/// it connects). Returns (GitHub requests made, runners deleted).
pub(crate) async fn sweep<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    records: &[JobState],
) -> (u32, u32) {
    let prefix = format!("{}-", engine.settings.cluster);
    let in_use: std::collections::HashSet<&str> = records
        .iter()
        .map(|state| state.runner_name.as_str())
        .filter(|name| !name.is_empty())
        .collect();
    let scopes: Vec<_> = engine
        .scopes
        .lock()
        .expect("scopes lock")
        .iter()
        .cloned()
        .collect();
    let (mut requests, mut deleted) = (0, 0);
    for scope in scopes {
        requests += 1;
        let runners = match engine.github.list_runners(&scope, &prefix).await {
            Ok(runners) => runners,
            Err(err) => {
                warn!(?scope, error = %err, "listing runners failed");
                continue;
            }
        };
        for runner in runners {
            if runner.status != "offline" || runner.busy || in_use.contains(runner.name.as_str()) {
                continue;
            }
            requests += 1;
            match engine.github.delete_runner(&scope, runner.id).await {
                Ok(()) => {
                    deleted += 1;
                    engine.metrics.reconcile_action("runner_deleted");
                    info!(?scope, runner = %runner.name, runner_id = runner.id, reason = "offline and idle", "deleted a runner");
                }
                Err(err) => warn!(runner = %runner.name, error = %err, "deleting a runner failed"),
            }
        }
    }
    (requests, deleted)
}
