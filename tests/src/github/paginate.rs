//! GitHub's pagination: `per_page` (default 30, at most 100) and `page`
//! (from 1), with a `Link` header naming the `prev`, `next`, `first` and
//! `last` pages. Source: docs.github.com, "Using pagination in the REST API".

use std::collections::HashMap;

/// The page a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub per_page: usize,
    pub page: usize,
}

impl Page {
    /// From the query parameters; bad or missing values take the defaults.
    pub fn from_query(query: &HashMap<String, String>) -> Self {
        let number = |name: &str, default: usize| {
            query
                .get(name)
                .and_then(|value| value.parse::<usize>().ok())
                .filter(|value| *value > 0)
                .unwrap_or(default)
        };
        Self {
            per_page: number("per_page", 30).min(100),
            page: number("page", 1),
        }
    }
}

/// The items of `page`, and the `Link` header value (if there is more than
/// one page). `url` is the request's URL without query; `query` its other
/// parameters.
pub fn paginate<T>(
    items: Vec<T>,
    page: Page,
    url: &str,
    query: &HashMap<String, String>,
) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let last = total.div_ceil(page.per_page).max(1);
    let start = (page.page - 1).saturating_mul(page.per_page);
    let items: Vec<T> = items.into_iter().skip(start).take(page.per_page).collect();
    if last == 1 {
        return (items, None);
    }
    let mut others: Vec<(&String, &String)> = query
        .iter()
        .filter(|(key, _)| key.as_str() != "page" && key.as_str() != "per_page")
        .collect();
    others.sort();
    let prefix: String = others
        .iter()
        .map(|(key, value)| format!("{key}={value}&"))
        .collect();
    let link = |number: usize, rel: &str| {
        format!(
            "<{url}?{prefix}per_page={}&page={number}>; rel=\"{rel}\"",
            page.per_page
        )
    };
    let mut links = Vec::new();
    if page.page > 1 {
        links.push(link((page.page - 1).min(last), "prev"));
    }
    if page.page < last {
        links.push(link(page.page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page.page > 1 {
        links.push(link(1, "first"));
    }
    (items, Some(links.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn per_page_defaults_to_30_and_is_capped_at_100() {
        assert_eq!(
            Page::from_query(&query(&[])),
            Page {
                per_page: 30,
                page: 1
            }
        );
        assert_eq!(
            Page::from_query(&query(&[("per_page", "500"), ("page", "0")])),
            Page {
                per_page: 100,
                page: 1
            }
        );
    }

    #[test]
    fn the_middle_page_links_to_prev_next_last_and_first() {
        let q = query(&[("status", "queued"), ("per_page", "2"), ("page", "2")]);
        let (items, link) = paginate((1..=5).collect(), Page::from_query(&q), "http://e/runs", &q);
        assert_eq!(items, [3, 4]);
        assert_eq!(
            link.unwrap(),
            "<http://e/runs?status=queued&per_page=2&page=1>; rel=\"prev\", \
             <http://e/runs?status=queued&per_page=2&page=3>; rel=\"next\", \
             <http://e/runs?status=queued&per_page=2&page=3>; rel=\"last\", \
             <http://e/runs?status=queued&per_page=2&page=1>; rel=\"first\""
        );
    }

    #[test]
    fn a_single_page_has_no_link_and_a_page_past_the_end_is_empty() {
        let q = query(&[]);
        let (items, link) = paginate(vec![1, 2], Page::from_query(&q), "http://e/x", &q);
        assert_eq!((items, link), (vec![1, 2], None));
        let q = query(&[("per_page", "1"), ("page", "9")]);
        let (items, link) = paginate(vec![1, 2], Page::from_query(&q), "http://e/x", &q);
        assert!(items.is_empty());
        assert!(link.unwrap().contains("rel=\"prev\""));
    }
}
