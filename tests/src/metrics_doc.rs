//! `docs/metrics.md` against a service's real `/metrics`, both ways: every
//! family the service exports is documented with its type and labels, and
//! every documented metric is exported. Services create their usual series
//! at start, so a scrape of a fresh process shows every family.
//!
//! Names are the ones a query uses: counters with `_total`, histograms by
//! their base name (`_bucket`, `_sum`, `_count` follow).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::eventually::eventually;
use crate::paths::repo_root;

/// One metric: its type and label names (without `le`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub kind: String,
    pub labels: BTreeSet<String>,
}

/// Metrics by name, as a query names them.
pub type Metrics = BTreeMap<String, Metric>;

/// The documented metrics of one service: the table under the heading
/// `## <service>` of `docs/metrics.md` (`| `name` | type | `a`, `b` | meaning |`).
pub fn documented(service: &str) -> Metrics {
    let path = repo_root().join("docs/metrics.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    parse_documented(&text, service)
}

/// [`documented`] from the page's text.
pub fn parse_documented(text: &str, service: &str) -> Metrics {
    let heading = format!("## {service}");
    let mut in_section = false;
    let mut metrics = Metrics::new();
    for line in text.lines() {
        if line.starts_with("## ") {
            in_section = line.trim() == heading;
            continue;
        }
        if !in_section || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [name, kind, labels, ..] = cells[..] else {
            panic!("docs/metrics.md: a row with fewer than 4 cells: {line}");
        };
        let labels = labels
            .split(',')
            .map(|label| label.trim().trim_matches('`'))
            .filter(|label| !label.is_empty() && *label != "-" && *label != "—")
            .map(str::to_owned)
            .collect();
        let previous = metrics.insert(
            name.trim_matches('`').to_owned(),
            Metric {
                kind: kind.to_owned(),
                labels,
            },
        );
        assert!(previous.is_none(), "docs/metrics.md lists {name} twice");
    }
    assert!(
        !metrics.is_empty(),
        "docs/metrics.md: no metrics table under {heading:?}"
    );
    metrics
}

/// The metrics of an exposition (Prometheus text or OpenMetrics).
pub fn exported(text: &str) -> Metrics {
    let mut families: BTreeMap<String, Metric> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            families.insert(
                name.to_owned(),
                Metric {
                    kind: kind.trim().to_owned(),
                    labels: BTreeSet::new(),
                },
            );
        }
    }
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let Some((sample, labels)) = parse_sample(line) else {
            continue;
        };
        let family = families
            .keys()
            .filter(|family| {
                sample
                    .strip_prefix(family.as_str())
                    .is_some_and(|suffix| SUFFIXES.contains(&suffix))
            })
            .max_by_key(|family| family.len())
            .cloned()
            .unwrap_or_else(|| panic!("sample {sample:?} of no # TYPE family"));
        let metric = families.get_mut(&family).expect("found above");
        metric
            .labels
            .extend(labels.into_iter().filter(|label| label != "le"));
    }
    families
        .into_iter()
        .map(|(name, metric)| {
            let name = if metric.kind == "counter" {
                format!("{name}_total")
            } else {
                name
            };
            (name, metric)
        })
        .collect()
}

const SUFFIXES: [&str; 6] = ["", "_total", "_created", "_bucket", "_sum", "_count"];

/// `name{a="x",b="y"} value` -> (name, label names).
fn parse_sample(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = line[..name_end].to_owned();
    let mut labels = Vec::new();
    if line[name_end..].starts_with('{') {
        let mut chars = line[name_end + 1..].chars();
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '=' => {
                    labels.push(std::mem::take(&mut label).trim().to_owned());
                    // The quoted value, with backslash escapes.
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' => break,
                            _ => {}
                        }
                    }
                }
                ',' => {}
                '}' => break,
                c => label.push(c),
            }
        }
    }
    Some((name, labels))
}

/// What differs between `documented` and `exported`; empty when they agree.
pub fn differences(documented: &Metrics, exported: &Metrics) -> Vec<String> {
    let mut differences = Vec::new();
    for (name, metric) in exported {
        match documented.get(name) {
            None => differences.push(format!(
                "{name} ({}, labels {:?}) is exported but not in docs/metrics.md",
                metric.kind, metric.labels
            )),
            Some(doc) if doc != metric => differences.push(format!(
                "{name}: docs/metrics.md says {} with labels {:?}, /metrics has {} with labels {:?}",
                doc.kind, doc.labels, metric.kind, metric.labels
            )),
            Some(_) => {}
        }
    }
    for name in documented
        .keys()
        .filter(|name| !exported.contains_key(*name))
    {
        differences.push(format!("{name} is in docs/metrics.md but not exported"));
    }
    differences
}

/// Panics, listing every difference, unless `service`'s section of
/// `docs/metrics.md` and `scrape` agree.
pub fn assert_documented(service: &str, scrape: &str) {
    let differences = differences(&documented(service), &exported(scrape));
    assert!(
        differences.is_empty(),
        "docs/metrics.md and {service}'s /metrics differ:\n  {}\n\n/metrics:\n{scrape}",
        differences.join("\n  ")
    );
}

/// A loopback address no one listens on right now, for a binary's
/// `--admin-listen` (or another listener it binds itself).
pub fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// `GET http://<addr>/metrics`, once it answers 200 (a process that just
/// started may not listen yet), within `deadline`.
pub async fn scrape(addr: SocketAddr, deadline: Duration) -> String {
    let url = format!("http://{addr}/metrics");
    let client = reqwest::Client::new();
    eventually(&format!("{url} to answer"), deadline, || async {
        let response = client.get(&url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    })
    .await
    .unwrap_or_else(|err| panic!("{err}"))
}

/// The value of the sample `name{labels}` exactly as written in the
/// exposition (labels in the service's order), if present.
pub fn sample_value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# Metrics

## gha-x

| metric | type | labels | meaning |
|---|---|---|---|
| `gha_x_things_total` | counter | `kind` | things |
| `gha_x_up` | gauge | | up |
| `gha_x_seconds` | histogram | `pool` | time |

## gha-y

| metric | type | labels | meaning |
|---|---|---|---|
| `gha_y_other_total` | counter | | other |
";

    const SCRAPE: &str = "\
# HELP gha_x_things Things.
# TYPE gha_x_things counter
gha_x_things_total{kind=\"a,b=\\\"c\\\"\"} 0
# TYPE gha_x_up gauge
gha_x_up 1
# TYPE gha_x_seconds histogram
gha_x_seconds_sum{pool=\"cpu\"} 0.0
gha_x_seconds_count{pool=\"cpu\"} 0
gha_x_seconds_bucket{le=\"1.0\",pool=\"cpu\"} 0
# EOF
";

    #[test]
    fn a_matching_page_and_scrape_agree() {
        let documented = parse_documented(PAGE, "gha-x");
        assert_eq!(documented.len(), 3);
        assert_eq!(
            differences(&documented, &exported(SCRAPE)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_kind_of_drift_is_reported() {
        let documented = parse_documented(PAGE, "gha-x");
        let drifted = SCRAPE
            .replace("gha_x_up gauge", "gha_x_up counter")
            .replace("gha_x_up 1", "gha_x_up_total 1")
            .replace("pool=", "partition=")
            + "# TYPE gha_x_new gauge\ngha_x_new 3\n";
        let found = differences(&documented, &exported(&drifted));
        let text = found.join("\n");
        assert!(
            text.contains("gha_x_new (gauge, labels {}) is exported but not in docs"),
            "{text}"
        );
        assert!(
            text.contains("gha_x_up is in docs/metrics.md but not exported"),
            "{text}"
        );
        assert!(text.contains("gha_x_up_total (counter"), "{text}");
        assert!(
            text.contains("gha_x_seconds: docs/metrics.md says histogram with labels {\"pool\"}"),
            "{text}"
        );
    }

    #[test]
    fn sample_values_are_read_by_exact_series() {
        assert_eq!(sample_value(SCRAPE, "gha_x_up"), Some(1.0));
        assert_eq!(
            sample_value(SCRAPE, "gha_x_seconds_count{pool=\"cpu\"}"),
            Some(0.0)
        );
        assert_eq!(sample_value(SCRAPE, "gha_x_down"), None);
    }
}
