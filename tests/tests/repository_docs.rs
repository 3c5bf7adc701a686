//! The repository explains itself: no file points at a design document
//! that is not in it (the architecture page is `docs/architecture.md`,
//! linked from the README), and every relative link in the Markdown pages
//! leads to a file that exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use gha_testkit::paths::repo_root;

/// The files git tracks (what a clone has), as paths under the root.
fn tracked_files() -> Vec<PathBuf> {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo_root())
        .args(["ls-files", "-z"])
        .output()
        .expect("git");
    assert!(output.status.success(), "{output:?}");
    output
        .stdout
        .split(|b| *b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| PathBuf::from(String::from_utf8_lossy(name).into_owned()))
        .collect()
}

#[test]
fn nothing_points_at_a_design_document_outside_the_repository() {
    // Spelt in two halves so this file does not find itself.
    let needle = ["design", ".md"].concat();
    let root = repo_root();
    let offenders: Vec<String> = tracked_files()
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read(root.join(&path)).ok()?;
            let text = String::from_utf8(text).ok()?;
            let lines: Vec<String> = text
                .lines()
                .enumerate()
                .filter(|(_, line)| line.contains(&needle))
                .map(|(n, line)| format!("{}:{}: {}", path.display(), n + 1, line.trim()))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "point these at docs/architecture.md:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_readme_links_the_architecture_page() {
    let root = repo_root();
    assert!(root.join("docs/architecture.md").is_file());
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("](docs/architecture.md)"),
        "README.md must link docs/architecture.md"
    );
}

/// The targets of `[text](target)` links in `text`.
fn link_targets(text: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find(')') else { break };
        targets.push(&rest[..end]);
        rest = &rest[end..];
    }
    targets
}

#[test]
fn relative_links_in_the_markdown_pages_lead_somewhere() {
    let root = repo_root();
    let mut broken = Vec::new();
    for page in tracked_files()
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
    {
        let text = std::fs::read_to_string(root.join(&page)).unwrap();
        let dir = page.parent().unwrap_or(Path::new(""));
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            if file.is_empty() || file.contains(' ') {
                continue;
            }
            if !root.join(dir).join(file).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn link_targets_are_found() {
    assert_eq!(
        link_targets("see [a](docs/a.md) and [b](../b.md#x), not [c] (d)"),
        ["docs/a.md", "../b.md#x"]
    );
}
