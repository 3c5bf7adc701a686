//! Runner registrations on demand: the launcher proves it is the Slurm job
//! we submitted (its claim), and only then is a JIT config minted.

use gha_proto::v1::{JitConfigRefusal, JitConfigReply, JitConfigRequest, JobPhase, JobState};
use secrecy::{ExposeSecret, SecretString};
use tracing::{info, warn};

use crate::engine::{Change, Engine, EngineError, Placer, now_ms};
use crate::github::{GitHubApi, RunnerRequest, RunnerScope, ScopeTarget};
use crate::settings::ScopeKind;
use crate::slurm::BatchSystem;
use crate::{claim, record};

fn refusal(kind: JitConfigRefusal, message: impl Into<String>) -> JitConfigReply {
    JitConfigReply {
        refusal: kind as i32,
        message: message.into(),
        ..JitConfigReply::default()
    }
}

/// Where this job's runner is registered.
pub fn scope(kind: ScopeKind, state: &JobState) -> RunnerScope {
    let job = state.job.clone().unwrap_or_default();
    let target = match kind {
        ScopeKind::Repo => ScopeTarget::Repo(job.repository),
        ScopeKind::Org => ScopeTarget::Org(job.owner),
    };
    RunnerScope {
        target,
        installation: u64::try_from(job.installation_id).ok().filter(|id| *id > 0),
    }
}

/// The runner name of a Slurm job: unique per cluster, found again after
/// an error.
pub fn runner_name(cluster: &str, slurm_job_id: u64) -> String {
    format!("{cluster}-{slurm_job_id}")
}

/// Answers one request. Every refusal is logged with the job and Slurm ids
/// (never the claim).
pub async fn answer<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    request: JitConfigRequest,
) -> JitConfigReply {
    let job_id = request.job_id;
    let slurm_job_id = request.slurm_job_id;
    let reply = match check_and_mint(engine, request).await {
        Ok(reply) => reply,
        Err(err) => {
            engine.metrics.error(err.metric_label());
            refusal(
                JitConfigRefusal::GithubError,
                format!("scheduler could not record the claim: {err}"),
            )
        }
    };
    let outcome = reply.refusal().as_str_name().to_lowercase();
    engine.metrics.jit(&outcome);
    if reply.refusal() == JitConfigRefusal::Unspecified {
        info!(
            job_id,
            slurm_job_id,
            runner = %reply.runner_name,
            "JIT config minted"
        );
    } else {
        warn!(job_id, slurm_job_id, refusal = %outcome, message = %reply.message, "JIT config refused");
    }
    reply
}

async fn check_and_mint<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    request: JitConfigRequest,
) -> Result<JitConfigReply, EngineError> {
    let job_id = request.job_id;
    let slurm_job_id = request.slurm_job_id;
    let presented = SecretString::from(request.claim);
    let Some(current) = engine.kv.get(&job_id.to_string()).await? else {
        return Ok(refusal(
            JitConfigRefusal::UnknownJob,
            format!("no record of job {job_id}"),
        ));
    };
    let state = current.value;
    if !claim::matches(&presented, &state.claim_sha256) {
        return Ok(refusal(
            JitConfigRefusal::BadClaim,
            "the claim does not match",
        ));
    }
    if state.slurm_job_id != 0 && state.slurm_job_id != slurm_job_id {
        return Ok(refusal(
            JitConfigRefusal::UnknownJob,
            format!(
                "job {job_id} belongs to Slurm job {}, not {slurm_job_id}",
                state.slurm_job_id
            ),
        ));
    }
    if state.runner_id != 0 {
        return Ok(refusal(
            JitConfigRefusal::AlreadyClaimed,
            "this claim was already used",
        ));
    }
    let claimable = matches!(state.phase(), JobPhase::Submitted | JobPhase::Launching)
        || record::is_submitting(&state);
    if !claimable {
        return Ok(refusal(
            JitConfigRefusal::DemandGone,
            format!("job is {}: {}", state.phase().as_str_name(), state.reason),
        ));
    }
    if !engine.minting.lock().expect("minting lock").insert(job_id) {
        return Ok(refusal(
            JitConfigRefusal::AlreadyClaimed,
            "a registration for this job is being minted",
        ));
    }
    let outcome = mint(engine, &state, slurm_job_id).await;
    engine.minting.lock().expect("minting lock").remove(&job_id);
    outcome
}

async fn mint<B: BatchSystem, G: GitHubApi, P: Placer>(
    engine: &Engine<B, G, P>,
    state: &JobState,
    slurm_job_id: u64,
) -> Result<JitConfigReply, EngineError> {
    let job_id = record::job_id(state);
    let claimed_hash = state.claim_sha256.clone();
    let Some(state) = engine
        .modify(job_id, |current| {
            if current.claim_sha256 != claimed_hash || current.runner_id != 0 {
                Change::Keep
            } else {
                Change::Write(record::launching(current, slurm_job_id, now_ms()))
            }
        })
        .await?
    else {
        return Ok(refusal(JitConfigRefusal::UnknownJob, "record vanished"));
    };
    if state.phase() != JobPhase::Launching || state.runner_id != 0 {
        return Ok(refusal(
            JitConfigRefusal::AlreadyClaimed,
            "this claim was already used",
        ));
    }
    let settings = &engine.settings;
    let scope = scope(settings.runner_scope, &state);
    let name = runner_name(&settings.cluster, slurm_job_id);
    // A POST that failed earlier may have registered the runner: its config
    // is lost to us, so remove it before minting again.
    if let Ok(Some(stale)) = engine.github.find_runner(&scope, &name).await {
        warn!(job_id, slurm_job_id, runner = %name, "removing a registration left by an earlier failed mint");
        let _ = engine.github.delete_runner(&scope, stale.id).await;
    }
    let request = RunnerRequest {
        name: name.clone(),
        labels: state.job.clone().unwrap_or_default().labels,
        runner_group_id: settings.runner_group_id,
    };
    match engine.github.generate_jit_config(&scope, &request).await {
        Ok(minted) => {
            let runner_id = minted.runner.id;
            engine
                .modify(job_id, |current| {
                    Change::Write(record::minted(current, &name, runner_id, now_ms()))
                })
                .await?;
            Ok(JitConfigReply {
                encoded_jit_config: minted.encoded_jit_config.expose_secret().to_owned(),
                runner_name: name,
                runner_id,
                ..JitConfigReply::default()
            })
        }
        Err(err) => {
            engine.metrics.error(err.metric_label());
            Ok(refusal(
                JitConfigRefusal::GithubError,
                format!("generate-jitconfig: {err}"),
            ))
        }
    }
}
