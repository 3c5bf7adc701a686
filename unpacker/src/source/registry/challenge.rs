//! `WWW-Authenticate` challenges of a registry, parsed: which scheme it
//! wants and, for bearer tokens, where to get one.
//!
//! Parsing only (RFC 7235 auth-params with quoted strings, as Docker Hub,
//! GHCR and distribution send them).

/// What a registry's 401 asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="..."`: send the credentials with every request.
    Basic,
    /// `Bearer realm=..,service=..,scope=..`: get a token from `realm`.
    Bearer(BearerChallenge),
}

/// Where and for what a bearer token is to be requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The token endpoint's URL.
    pub realm: String,
    pub service: Option<String>,
    /// Space-separated scopes, `repository:NAME:pull` and the like.
    pub scope: Option<String>,
}

/// The challenge to answer among a response's `WWW-Authenticate` headers:
/// bearer is preferred (it never sends the password to the registry itself).
pub fn choose<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Challenge> {
    let parsed: Vec<Challenge> = headers.into_iter().filter_map(parse).collect();
    parsed
        .iter()
        .find(|challenge| matches!(challenge, Challenge::Bearer(_)))
        .or_else(|| parsed.first())
        .cloned()
}

/// One header's challenge; `None` for schemes the client does not speak
/// or a bearer challenge without a realm.
pub fn parse(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = auth_params(rest);
    let get = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    Some(Challenge::Bearer(BearerChallenge {
        realm: get("realm").filter(|realm| !realm.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    }))
}

/// `key=value, key="quoted, \"value\""` pairs, in order.
fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars
            .next_if(|c| c.is_ascii_whitespace() || *c == ',')
            .is_some()
        {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_owned();
        if key.is_empty() {
            return params;
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
            value = value.trim().to_owned();
        }
        params.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer(BearerChallenge {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        })
    }

    #[test]
    fn docker_hub_style_bearer_challenges_parse() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#;
        assert_eq!(
            parse(header),
            Some(bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/debian:pull")
            ))
        );
    }

    #[test]
    fn quoted_commas_escapes_and_spacing_survive() {
        let header = r#"bearer  scope="repository:a/b:pull,push" , realm = "http://127.0.0.1:1/t\"x", service=plain"#;
        assert_eq!(
            parse(header),
            Some(bearer(
                "http://127.0.0.1:1/t\"x",
                Some("plain"),
                Some("repository:a/b:pull,push")
            ))
        );
    }

    #[test]
    fn basic_and_unknown_schemes() {
        assert_eq!(
            parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse("Negotiate abc"), None);
        assert_eq!(parse(r#"Bearer service="x""#), None, "no realm");
        assert_eq!(parse(""), None);
    }

    #[test]
    fn bearer_is_chosen_over_basic() {
        let headers = [r#"Basic realm="r""#, r#"Bearer realm="https://t/""#];
        assert_eq!(choose(headers), Some(bearer("https://t/", None, None)));
        assert_eq!(choose([r#"Basic realm="r""#]), Some(Challenge::Basic));
        assert_eq!(choose(["Digest x=1"]), None);
    }
}
