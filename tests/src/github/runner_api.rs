//! The emulator's runner protocol: how a (fake) runner connects, takes a
//! job, reports progress and finishes.
//!
//! GitHub's own runner protocol is private; this is the emulator's stand-in,
//! under `/_runner/`. What is faithful is the shape around it: the runner is
//! registered through GitHub's documented endpoints (`generate-jitconfig`,
//! `registration-token`), its `encoded_jit_config` has the real structure
//! (base64 of a JSON map of runner files, each base64), it is `online` only
//! while connected, and it takes the oldest queued job whose labels it has.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `POST /_runner/sessions` | [`SessionRequest`] | 201 [`SessionInfo`]; 401 if the credential is unknown, used or expired |
//! | `GET /_runner/sessions/{id}/job?wait_ms=N` | | 200 [`AssignedJob`], or 204 if none came within `wait_ms` |
//! | `GET /_runner/sessions/{id}/jobs/{job_id}` | | 200 [`JobControl`] |
//! | `POST /_runner/sessions/{id}/jobs/{job_id}/complete` | [`JobOutcome`] | 204 |
//! | `DELETE /_runner/sessions/{id}` | | 204: the runner goes offline |
//!
//! Every call on a session counts as the runner's heartbeat.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::model::Step;

/// How a runner proves who it is when it connects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum SessionRequest {
    /// The credential from a JIT config's `.credentials` file. Single use.
    Jit { jit_token: String },
    /// A registration token (`POST .../runners/registration-token`) and the
    /// runner's own settings, as `config.sh` would send them.
    Registration {
        registration_token: String,
        name: String,
        labels: Vec<String>,
        #[serde(default)]
        ephemeral: bool,
    },
}

/// A connected runner.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionInfo {
    pub session_id: String,
    pub runner_id: u64,
    pub runner_name: String,
    pub ephemeral: bool,
}

/// A job handed to a runner: what to run, and what the real runner's job
/// message tells its worker about the job (the `github` context the worker
/// exports to steps and job hooks as `GITHUB_*`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssignedJob {
    pub job_id: u64,
    /// `GITHUB_RUN_ID`.
    pub run_id: u64,
    /// `GITHUB_RUN_ATTEMPT`: 1, then one more per re-run (the
    /// `workflow_job` payload's `run_attempt`).
    pub run_attempt: u32,
    /// The job's display name, as the runner prints it.
    pub name: String,
    /// `GITHUB_JOB`: the job's key under `jobs:` in the workflow file, not
    /// its display name.
    pub job_key: String,
    /// `GITHUB_WORKFLOW`: the workflow's name.
    pub workflow: String,
    /// `GITHUB_REPOSITORY`: `owner/name`.
    pub repository: String,
    pub steps: Vec<Step>,
}

/// What the runner learns while a job runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobControl {
    /// The workflow was cancelled: stop and report `cancelled`.
    pub cancel_requested: bool,
}

/// A job's result, in the runner's words.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JobResult {
    Succeeded,
    Failed,
    Cancelled,
}

impl JobResult {
    /// As the real runner prints it: `Succeeded`, `Failed`, `Canceled`.
    pub fn as_runner_prints(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Cancelled => "Canceled",
        }
    }
}

/// Body of `POST .../complete`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobOutcome {
    pub result: JobResult,
}

/// The `.runner` file inside a JIT config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunnerFile {
    pub agent_id: u64,
    pub agent_name: String,
    pub pool_id: u64,
    pub pool_name: String,
    /// Where the runner connects: the emulator's `/_runner` base.
    pub server_url: String,
    /// The repository or organisation page the runner belongs to.
    pub git_hub_url: String,
    pub work_folder: String,
    pub ephemeral: bool,
    pub disable_update: bool,
}

/// The `.credentials` file inside a JIT config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CredentialsFile {
    pub scheme: String,
    pub data: CredentialsData,
}

/// The credential itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsData {
    pub client_id: String,
    pub authorization_url: String,
    /// The single-use secret the runner presents (`SessionRequest::Jit`).
    pub token: String,
}

/// What a runner needs from its JIT config.
#[derive(Debug, Clone, PartialEq)]
pub struct JitConfig {
    pub runner: RunnerFile,
    pub credentials: CredentialsFile,
}

/// Why a JIT config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JitConfigError {
    #[error("JIT config is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("JIT config is not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("JIT config has no {0} file")]
    MissingFile(&'static str),
}

impl JitConfig {
    /// `encoded_jit_config`: base64 of a JSON object mapping file names
    /// (`.runner`, `.credentials`, `.credentials_rsaparams`) to base64 file
    /// contents, as GitHub returns it.
    pub fn encode(&self) -> String {
        fn file<T: Serialize>(value: &T) -> String {
            STANDARD.encode(serde_json::to_string(value).expect("runner files serialise"))
        }
        let files = serde_json::json!({
            ".runner": file(&self.runner),
            ".credentials": file(&self.credentials),
            ".credentials_rsaparams": STANDARD.encode(
                r#"{"d":"emulator","dp":"emulator","dq":"emulator","exponent":"AQAB","inverseQ":"emulator","modulus":"emulator","p":"emulator","q":"emulator"}"#
            ),
        });
        STANDARD.encode(files.to_string())
    }

    /// Reads an `encoded_jit_config`.
    pub fn decode(encoded: &str) -> Result<Self, JitConfigError> {
        let files: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&STANDARD.decode(encoded.trim())?)?;
        let file = |name: &'static str| -> Result<Vec<u8>, JitConfigError> {
            let value = files
                .get(name)
                .and_then(|value| value.as_str())
                .ok_or(JitConfigError::MissingFile(name))?;
            Ok(STANDARD.decode(value)?)
        };
        Ok(Self {
            runner: serde_json::from_slice(&file(".runner")?)?,
            credentials: serde_json::from_slice(&file(".credentials")?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> JitConfig {
        JitConfig {
            runner: RunnerFile {
                agent_id: 1001,
                agent_name: "gha-node1-42".into(),
                pool_id: 1,
                pool_name: "Default".into(),
                server_url: "http://127.0.0.1:1/_runner".into(),
                git_hub_url: "http://127.0.0.1:1/acme/widgets".into(),
                work_folder: "_work".into(),
                ephemeral: true,
                disable_update: true,
            },
            credentials: CredentialsFile {
                scheme: "OAuthAccessToken".into(),
                data: CredentialsData {
                    client_id: "c".into(),
                    authorization_url: "http://127.0.0.1:1/_runner/token".into(),
                    token: "secret".into(),
                },
            },
        }
    }

    #[test]
    fn jit_config_round_trips_through_the_github_file_layout() {
        let encoded = config().encode();
        let outer: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(&encoded).unwrap()).unwrap();
        for file in [".runner", ".credentials", ".credentials_rsaparams"] {
            assert!(outer.get(file).is_some(), "missing {file}");
        }
        let runner: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(outer[".runner"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(runner["agentName"], "gha-node1-42");
        assert_eq!(runner["serverUrl"], "http://127.0.0.1:1/_runner");
        assert_eq!(JitConfig::decode(&encoded).unwrap(), config());
    }

    #[test]
    fn a_truncated_config_is_refused_with_the_reason() {
        assert!(matches!(
            JitConfig::decode("not base64!"),
            Err(JitConfigError::Base64(_))
        ));
        let no_runner = STANDARD.encode(r#"{".credentials":""}"#);
        assert!(matches!(
            JitConfig::decode(&no_runner),
            Err(JitConfigError::MissingFile(".runner"))
        ));
    }

    #[test]
    fn session_requests_are_told_apart_by_their_fields() {
        let jit: SessionRequest = serde_json::from_str(r#"{"jit_token":"t"}"#).unwrap();
        assert_eq!(
            jit,
            SessionRequest::Jit {
                jit_token: "t".into()
            }
        );
        let registration: SessionRequest =
            serde_json::from_str(r#"{"registration_token":"r","name":"n","labels":["slurm"]}"#)
                .unwrap();
        assert!(matches!(
            registration,
            SessionRequest::Registration {
                ephemeral: false,
                ..
            }
        ));
    }
}
