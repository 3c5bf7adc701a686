//! Which repositories to watch: the explicit list, every repository of an
//! organisation (`GET /orgs/{org}/repos`), or every repository an app
//! installation can access (`GET /installation/repositories`); all pages,
//! archived repositories skipped.

use serde::Deserialize;

use crate::cli::Watched;
use gha_github::{Fetched, GitHubClient, GitHubError};

#[derive(Deserialize)]
struct RepoName {
    full_name: String,
    #[serde(default)]
    archived: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RepoPage {
    /// `/orgs/{org}/repos` answers a bare array.
    Plain(Vec<RepoName>),
    /// `/installation/repositories` wraps it.
    Wrapped { repositories: Vec<RepoName> },
}

/// The `owner/name` of every watched repository.
pub async fn resolve(client: &GitHubClient, watched: &Watched) -> Result<Vec<String>, GitHubError> {
    let first = match watched {
        Watched::Repos(repos) => return Ok(repos.clone()),
        Watched::Org(org) => format!("/orgs/{org}/repos?per_page=100&page=1"),
        Watched::Installation => "/installation/repositories?per_page=100&page=1".to_string(),
    };
    let mut names = Vec::new();
    let mut next = Some(first);
    while let Some(path) = next.take() {
        if let Fetched::Fresh {
            value, next: link, ..
        } = client.get::<RepoPage>(&path, None).await?
        {
            let repos = match value {
                RepoPage::Plain(repos)
                | RepoPage::Wrapped {
                    repositories: repos,
                } => repos,
            };
            names.extend(
                repos
                    .into_iter()
                    .filter(|repo| !repo.archived)
                    .map(|repo| repo.full_name),
            );
            next = link;
        }
    }
    Ok(names)
}
