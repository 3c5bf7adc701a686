//! Sized labels (`cpu-8`, `mem-32g`, `gpu-1`, `time-2h`) and the quantities
//! the policy file writes (`"32G"`, `"90m"`, `4`).
//!
//! Memory is counted in MiB, time in minutes: Slurm's own units for `--mem`
//! and `--time`.

use std::fmt;

/// The resources a sized label can adjust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Cpus,
    Mem,
    Gpus,
    Time,
}

impl Resource {
    /// The label prefix (`cpu` in `cpu-8`).
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Cpus => "cpu",
            Self::Mem => "mem",
            Self::Gpus => "gpu",
            Self::Time => "time",
        }
    }

    /// Parses a quantity of this resource written as text: a bare number,
    /// or for memory `512m`/`32g`/`1t`, for time `90m`/`2h`/`1d`
    /// (case-insensitive). `None` if it is not one.
    pub fn parse(self, text: &str) -> Option<u64> {
        let text = text.trim().to_ascii_lowercase();
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        if digits_end == 0 {
            return None;
        }
        let number: u64 = text[..digits_end].parse().ok()?;
        let unit = &text[digits_end..];
        let factor = match (self, unit) {
            (Self::Cpus | Self::Gpus, "") => 1,
            (Self::Mem, "" | "m") => 1,
            (Self::Mem, "g") => 1024,
            (Self::Mem, "t") => 1024 * 1024,
            (Self::Time, "" | "m") => 1,
            (Self::Time, "h") => 60,
            (Self::Time, "d") => 24 * 60,
            _ => return None,
        };
        number.checked_mul(factor)
    }

    /// A quantity written back for people (`32G`, `90m`, `8`).
    pub fn show(self, amount: u64) -> String {
        match self {
            Self::Cpus | Self::Gpus => amount.to_string(),
            Self::Mem if amount >= 1024 && amount.is_multiple_of(1024) => {
                format!("{}G", amount / 1024)
            }
            Self::Mem => format!("{amount}M"),
            Self::Time if amount >= 60 && amount.is_multiple_of(60) => format!("{}h", amount / 60),
            Self::Time => format!("{amount}m"),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// A label that asks for an amount of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizedLabel {
    pub resource: Resource,
    pub amount: u64,
    /// The label as the job wrote it, for refusals.
    pub label: String,
}

/// Reads `label` as a sized label; `None` for an ordinary label (including
/// look-alikes such as `cpu-fast`, which must then be served by a pool).
pub fn sized_label(label: &str) -> Option<SizedLabel> {
    let (prefix, amount) = label.split_once('-')?;
    let resource = [
        Resource::Cpus,
        Resource::Mem,
        Resource::Gpus,
        Resource::Time,
    ]
    .into_iter()
    .find(|r| r.prefix().eq_ignore_ascii_case(prefix))?;
    Some(SizedLabel {
        resource,
        amount: resource.parse(amount)?,
        label: label.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(label: &str) -> Option<(Resource, u64)> {
        sized_label(label).map(|s| (s.resource, s.amount))
    }

    #[test]
    fn sized_labels_are_read_in_slurm_units() {
        assert_eq!(amount("cpu-8"), Some((Resource::Cpus, 8)));
        assert_eq!(amount("CPU-8"), Some((Resource::Cpus, 8)));
        assert_eq!(amount("mem-32g"), Some((Resource::Mem, 32 * 1024)));
        assert_eq!(amount("mem-512m"), Some((Resource::Mem, 512)));
        assert_eq!(amount("mem-1T"), Some((Resource::Mem, 1024 * 1024)));
        assert_eq!(amount("gpu-1"), Some((Resource::Gpus, 1)));
        assert_eq!(amount("time-2h"), Some((Resource::Time, 120)));
        assert_eq!(amount("time-90m"), Some((Resource::Time, 90)));
        assert_eq!(amount("time-1d"), Some((Resource::Time, 1440)));
    }

    #[test]
    fn look_alikes_are_ordinary_labels() {
        for label in [
            "cpu-fast",
            "cpu",
            "cpu-",
            "mem-32x",
            "gpu-1g",
            "time-2s",
            "cpu-8-big",
            "disk-10g",
            "mem--1",
            "linux",
        ] {
            assert_eq!(sized_label(label), None, "{label}");
        }
    }

    #[test]
    fn quantities_print_back_readably() {
        assert_eq!(Resource::Mem.show(32 * 1024), "32G");
        assert_eq!(Resource::Mem.show(1536), "1536M");
        assert_eq!(Resource::Time.show(120), "2h");
        assert_eq!(Resource::Time.show(90), "90m");
        assert_eq!(Resource::Cpus.show(4), "4");
    }
}
