//! Where the fake runner's own lines go: stdout in the binary, a transcript
//! in tests. Event lines carry the real runner's UTC timestamp prefix
//! (`2024-11-26 09:05:03Z: Listening for Jobs`), which is what tools that
//! watch a runner's output match on.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// A sink for the runner's output, one line at a time.
pub trait Console: Send {
    /// Writes `line` and a newline, and flushes, so a watcher sees each line
    /// as soon as it is printed.
    fn line(&mut self, line: &str) -> std::io::Result<()>;

    /// Writes `what` as an event line, prefixed by the current UTC time.
    fn event(&mut self, what: &str) -> std::io::Result<()> {
        self.line(&timestamped(Utc::now(), what))
    }
}

/// `what` prefixed as the real runner prefixes events: `YYYY-MM-DD HH:MM:SSZ: `.
pub fn timestamped(at: DateTime<Utc>, what: &str) -> String {
    format!("{}: {what}", at.format("%Y-%m-%d %H:%M:%SZ"))
}

/// The process's stdout.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdoutConsole;

impl Console for StdoutConsole {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()
    }
}

/// Lines kept in memory; clones share them, so a test keeps one clone and
/// hands the other to the runner.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Transcript {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Console for Transcript {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn events_carry_the_real_runners_timestamp_prefix() {
        let at = Utc.with_ymd_and_hms(2024, 11, 26, 9, 5, 3).unwrap();
        assert_eq!(
            timestamped(at, "Listening for Jobs"),
            "2024-11-26 09:05:03Z: Listening for Jobs"
        );
    }

    #[test]
    fn a_transcript_records_events_with_a_parsable_timestamp() {
        let transcript = Transcript::default();
        let before = Utc::now().timestamp();
        transcript.clone().event("Running job: build").unwrap();
        let lines = transcript.lines();
        let [line] = lines.as_slice() else {
            panic!("expected one line: {lines:?}");
        };
        let (stamp, what) = line.split_once("Z: ").expect("timestamp prefix");
        assert_eq!(what, "Running job: build");
        let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S")
            .expect("timestamp format")
            .and_utc()
            .timestamp();
        assert!((before..=before + 5).contains(&at), "{line}");
    }
}
