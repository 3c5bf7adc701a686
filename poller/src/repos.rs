//! Which repositories to watch: the explicit list, or every repository of
//! an organisation (all pages of `GET /orgs/{org}/repos`).

use serde::Deserialize;

use crate::cli::Watched;
use crate::github::{Fetched, GitHubClient, GitHubError};

#[derive(Deserialize)]
struct RepoName {
    full_name: String,
    #[serde(default)]
    archived: bool,
}

/// The `owner/name` of every watched repository (archived ones skipped).
pub async fn resolve(client: &GitHubClient, watched: &Watched) -> Result<Vec<String>, GitHubError> {
    let org = match watched {
        Watched::Repos(repos) => return Ok(repos.clone()),
        Watched::Org(org) => org,
    };
    let mut names = Vec::new();
    let mut next = Some(format!("/orgs/{org}/repos?per_page=100&page=1"));
    while let Some(path) = next.take() {
        if let Fetched::Fresh {
            value, next: link, ..
        } = client.get::<Vec<RepoName>>(&path, None).await?
        {
            names.extend(
                value
                    .into_iter()
                    .filter(|repo| !repo.archived)
                    .map(|repo| repo.full_name),
            );
            next = link;
        }
    }
    Ok(names)
}
