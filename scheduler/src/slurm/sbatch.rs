//! `sbatch`'s command line, what it prints, and how its refusals read.
//!
//! Pure: the adapter in [`super::cli`] runs the command; `explain` prints
//! the same argument list with placeholders.

use super::{BatchError, SlurmJobId, Submission};

/// The arguments every submission starts with, before the placement's:
/// exactly-once (`--no-requeue`, a deterministic `--job-name`), no
/// environment leak (`--export` names each variable, never `ALL`), the
/// correlation id, and the grace between SIGTERM and kill.
pub fn fixed_args(export: &str, name: &str, comment: &str, grace: &str) -> Vec<String> {
    vec![
        "--parsable".to_string(),
        "--no-requeue".to_string(),
        format!("--export={export}"),
        format!("--job-name={name}"),
        format!("--comment={comment}"),
        format!("--signal=B:TERM@{grace}"),
    ]
}

/// The complete argument list for `submission` (values of its variables
/// are not in it: only their names).
pub fn args(submission: &Submission) -> Vec<String> {
    let names: Vec<&str> = submission
        .env
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(submission.secret_env.iter().map(|(name, _)| name.as_str()))
        .collect();
    let export = if names.is_empty() {
        "NONE".to_string()
    } else {
        names.join(",")
    };
    let mut args = fixed_args(
        &export,
        &submission.name,
        &submission.comment,
        &submission.signal_grace_seconds.to_string(),
    );
    if !submission.output.is_empty() {
        args.push(format!("--output={}", submission.output));
    }
    args.extend(submission.placement_args.iter().cloned());
    args
}

/// Checks what would make the command line or the `squeue` parse
/// ambiguous: names and comments are ours, so a bad one is a bug, refused
/// before running anything.
pub fn check(submission: &Submission) -> Result<(), BatchError> {
    let plain = |what: &str, text: &str| {
        if text.is_empty()
            || text.contains(super::squeue::SEPARATOR)
            || text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',')
        {
            return Err(BatchError::Rejected(format!(
                "{what} {text:?} is empty or contains whitespace, ',' or {:?}",
                super::squeue::SEPARATOR
            )));
        }
        Ok(())
    };
    plain("job name", &submission.name)?;
    plain("comment", &submission.comment)?;
    let names = submission
        .env
        .iter()
        .map(|(name, _)| name)
        .chain(submission.secret_env.iter().map(|(name, _)| name));
    for name in names {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        // SLURM_CONF would point sbatch itself at another cluster.
        if !valid || matches!(name.as_str(), "ALL" | "NONE" | "SLURM_CONF") {
            return Err(BatchError::Rejected(format!(
                "{name:?} cannot be exported to the job"
            )));
        }
    }
    Ok(())
}

/// The job id from `sbatch --parsable`'s stdout: `123` or `123;cluster`.
pub fn parse_job_id(stdout: &str) -> Option<SlurmJobId> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    let id = line.split(';').next()?;
    id.parse().ok()
}

/// Whether `sbatch`'s stderr is one of Slurm's final refusals: the same
/// request will be refused again, so retrying (after a lookup by name) is
/// pointless. Everything else (controller unreachable, timeouts, socket
/// errors, "try again later", unknown messages) is transient.
///
/// Final: an invalid partition, account, QOS, GRES, constraint (feature),
/// time limit or node count; a request beyond the association's or QOS's
/// limits (`...Limit`, `QOSMax...`); `Requested node configuration is not
/// available`; an invalid option (sbatch's own usage errors).
pub fn is_final_refusal(stderr: &str) -> bool {
    const TRANSIENT: [&str; 7] = [
        "temporarily unable",
        "unable to contact slurm controller",
        "socket timed out",
        "try again",
        "temporarily unavailable",
        "slurmctld not responding",
        "connection refused",
    ];
    const FINAL: [&str; 16] = [
        "invalid partition",
        "invalid account",
        "invalid qos",
        "invalid generic resource",
        "invalid gres",
        "invalid feature specification",
        "invalid time limit",
        "invalid node name",
        "invalid wckey",
        "invalid reservation",
        "requested node configuration is not available",
        "node count specification invalid",
        "job violates accounting/qos policy",
        "memory specification can not be satisfied",
        "unrecognized option",
        "invalid option",
    ];
    let text = stderr.to_ascii_lowercase();
    if TRANSIENT.iter().any(|t| text.contains(t)) {
        return false;
    }
    FINAL.iter().any(|f| text.contains(f))
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn submission() -> Submission {
        Submission {
            name: "gha-42-1".into(),
            comment: "corr-42".into(),
            placement_args: vec!["--partition=debug".into(), "--time=5".into()],
            signal_grace_seconds: 30,
            env: vec![("GHA_JOB_ID".into(), "42".into())],
            secret_env: vec![("GHA_CLAIM".into(), SecretString::from("s3cret"))],
            script: "#!/bin/sh\n".into(),
            output: "/dev/null".into(),
        }
    }

    #[test]
    fn the_command_line_names_variables_never_their_values() {
        let args = args(&submission());
        assert_eq!(
            args,
            [
                "--parsable",
                "--no-requeue",
                "--export=GHA_JOB_ID,GHA_CLAIM",
                "--job-name=gha-42-1",
                "--comment=corr-42",
                "--signal=B:TERM@30",
                "--output=/dev/null",
                "--partition=debug",
                "--time=5"
            ]
        );
        assert!(
            !args
                .iter()
                .any(|a| a.contains("s3cret") || a.contains("=42,"))
        );
        let mut bare = submission();
        bare.env.clear();
        bare.secret_env.clear();
        assert!(super::args(&bare).contains(&"--export=NONE".to_string()));
    }

    #[test]
    fn names_that_would_break_the_command_line_are_refused() {
        assert!(check(&submission()).is_ok());
        for name in ["", "gha 42", "gha|42", "gha,42"] {
            let mut bad = submission();
            bad.name = name.into();
            assert!(
                matches!(check(&bad), Err(BatchError::Rejected(_))),
                "{name:?}"
            );
        }
        for var in ["ALL", "NONE", "1X", "A-B", "SLURM_CONF", ""] {
            let mut bad = submission();
            bad.env = vec![(var.into(), "v".into())];
            assert!(check(&bad).is_err(), "{var:?}");
        }
    }

    #[test]
    fn job_ids_are_read_with_or_without_cluster() {
        assert_eq!(parse_job_id("123\n"), Some(123));
        assert_eq!(parse_job_id("\n456;cluster1\n"), Some(456));
        assert_eq!(parse_job_id(""), None);
        assert_eq!(parse_job_id("Submitted batch job 7\n"), None);
        assert_eq!(parse_job_id("garbage"), None);
    }

    #[test]
    fn final_refusals_are_told_from_transient_failures() {
        for stderr in [
            "sbatch: error: Batch job submission failed: Invalid partition name specified",
            "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
            "sbatch: error: Batch job submission failed: Invalid qos specification",
            "sbatch: error: Batch job submission failed: Requested node configuration is not available",
            "sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification",
            "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
            "sbatch: unrecognized option '--bogus'",
        ] {
            assert!(is_final_refusal(stderr), "{stderr}");
        }
        for stderr in [
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)",
            "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
            "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
            "sbatch: error: Batch job submission failed: Resource temporarily unavailable",
            "",
            "something new",
        ] {
            assert!(!is_final_refusal(stderr), "{stderr}");
        }
    }
}
