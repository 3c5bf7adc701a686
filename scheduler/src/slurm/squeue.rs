//! Reading `squeue`: one format that Slurm 22.05 and current releases print
//! alike, and a parser that tolerates what newer releases may add.
//!
//! `squeue -h -t all -o '%i|%T|%j|%k|%N|%r'`: job id, state, name,
//! comment, node list, reason, separated by `|`. The text format, not
//! `--json`: 22.05's `--json` ignores filters and newer releases print
//! `job_state` as a list. The fields that can hold free text come last
//! (reason after everything else), and our names and comments never
//! contain `|` (checked at submission); a foreign job whose name contains
//! `|` can only shift its own fields, and is never mistaken for ours unless
//! its name starts with our prefix.

use super::{SlurmJob, SlurmState};

/// Separates the fields of one `squeue` line.
pub const SEPARATOR: char = '|';

/// The `-o` format: id, state, name, comment, nodes, reason.
pub const FORMAT: &str = "%i|%T|%j|%k|%N|%r";

/// The jobs in `squeue -h -o FORMAT` output, and the lines that are not
/// one of ours to read (array or het job ids such as `12_[1-3]`, garbage),
/// for logging.
pub fn parse(stdout: &str) -> (Vec<SlurmJob>, Vec<String>) {
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for line in stdout.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(job) => jobs.push(job),
            None => skipped.push(line.to_string()),
        }
    }
    (jobs, skipped)
}

fn parse_line(line: &str) -> Option<SlurmJob> {
    let mut fields = line.splitn(6, SEPARATOR).map(str::trim);
    let id = fields.next()?.parse().ok()?;
    let state = parse_state(fields.next()?);
    let name = fields.next()?.to_string();
    let comment = null_as_empty(fields.next()?);
    let nodes = null_as_empty(fields.next().unwrap_or(""));
    let reason = null_as_empty(fields.next().unwrap_or(""));
    if name.is_empty() {
        return None;
    }
    Some(SlurmJob {
        id,
        name,
        comment,
        state,
        reason: if reason == "None" {
            String::new()
        } else {
            reason
        },
        nodes,
    })
}

/// Slurm prints `(null)` for an unset comment, some releases `n/a`.
fn null_as_empty(text: &str) -> String {
    match text {
        "(null)" | "n/a" | "N/A" => String::new(),
        other => other.to_string(),
    }
}

/// Reads a state as `%T` prints it; tolerates a list (`PENDING,REQUEUED`),
/// flags (`CANCELLED+`, `CANCELLED by 0`) and lower case.
pub fn parse_state(text: &str) -> SlurmState {
    let base = text
        .split([',', '+', ' '])
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    match base.as_str() {
        "PENDING" | "PD" => SlurmState::Pending,
        "CONFIGURING" | "CF" => SlurmState::Configuring,
        "RUNNING" | "R" => SlurmState::Running,
        "COMPLETING" | "CG" => SlurmState::Completing,
        "SUSPENDED" | "S" => SlurmState::Suspended,
        "COMPLETED" | "CD" => SlurmState::Completed,
        "CANCELLED" | "CA" => SlurmState::Cancelled,
        "FAILED" | "F" => SlurmState::Failed,
        "TIMEOUT" | "TO" => SlurmState::Timeout,
        "NODE_FAIL" | "NF" => SlurmState::NodeFail,
        "PREEMPTED" | "PR" => SlurmState::Preempted,
        "BOOT_FAIL" | "BF" => SlurmState::BootFail,
        "DEADLINE" | "DL" => SlurmState::Deadline,
        "OUT_OF_MEMORY" | "OOM" => SlurmState::OutOfMemory,
        _ => SlurmState::Other(text.trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Slurm 22.05.8 (`squeue -h -t all -o FORMAT`).
    const SLURM_22_05: &str = "\
2|PENDING|gha-probe-run|(null)||None
1|PENDING|gha-probe-a_very_long_name_exceeding_widths-12345678901234567890|corr-abc-1234567890-1234567890-1234567890||JobHeldUser
3|RUNNING|gha-7-1|corr-7|gha-node1|None
4|CANCELLED|gha-8-1|corr-8||None
5|COMPLETED|gha-9-2|corr-9|gha-node1|None
";

    #[test]
    fn slurm_22_05_output_is_read_whole() {
        let (jobs, skipped) = parse(SLURM_22_05);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(jobs.len(), 5);
        assert_eq!(
            jobs[1],
            SlurmJob {
                id: 1,
                name: "gha-probe-a_very_long_name_exceeding_widths-12345678901234567890".into(),
                comment: "corr-abc-1234567890-1234567890-1234567890".into(),
                state: SlurmState::Pending,
                reason: "JobHeldUser".into(),
                nodes: String::new(),
            }
        );
        assert_eq!(jobs[0].comment, "");
        assert_eq!(jobs[0].reason, "");
        assert_eq!(jobs[2].state, SlurmState::Running);
        assert_eq!(jobs[2].nodes, "gha-node1");
        assert!(jobs[3].state.is_finished());
        assert_eq!(jobs[4].state, SlurmState::Completed);
    }

    /// Made up: what a newer release might print (CRLF, state lists and
    /// flags, new states, reasons with separators, array jobs of others).
    #[test]
    fn newer_output_is_tolerated() {
        let text = "  10|PENDING,REQUEUED|gha-1-1|c1|n/a|ReqNodeNotAvail, UnavailableNodes:n[1-3]|x\r\n\
                    11|CANCELLED+|gha-2-1|c2|node[1-2]|None\r\n\
                    12|RESV_DEL_HOLD|gha-3-1|c3||Reservation|Deleted\n\
                    13_[1-4]|PENDING|someone-else|(null)||Priority\n\
                    \n\
                    garbage\n";
        let (jobs, skipped) = parse(text);
        assert_eq!(
            skipped,
            ["13_[1-4]|PENDING|someone-else|(null)||Priority", "garbage"]
        );
        assert_eq!(jobs.len(), 3);
        assert_eq!(jobs[0].state, SlurmState::Pending);
        assert_eq!(jobs[0].nodes, "");
        assert_eq!(jobs[0].reason, "ReqNodeNotAvail, UnavailableNodes:n[1-3]|x");
        assert_eq!(jobs[1].state, SlurmState::Cancelled);
        assert_eq!(jobs[1].nodes, "node[1-2]");
        assert_eq!(jobs[2].state, SlurmState::Other("RESV_DEL_HOLD".into()));
        assert_eq!(jobs[2].reason, "Reservation|Deleted");
    }

    #[test]
    fn short_and_long_state_names_are_read() {
        assert_eq!(parse_state("R"), SlurmState::Running);
        assert_eq!(parse_state("running"), SlurmState::Running);
        assert_eq!(parse_state("OUT_OF_MEMORY"), SlurmState::OutOfMemory);
        assert_eq!(parse_state("CANCELLED by 0"), SlurmState::Cancelled);
        assert_eq!(parse_state("NODE_FAIL"), SlurmState::NodeFail);
    }
}
