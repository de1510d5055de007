//! Paged lists: `?top=N&skip=M` in, `{"value", "count", "nextLink"}` out.

use serde::Serialize;

use super::problem::Problem;

/// Page size when `top` is not given.
pub const DEFAULT_TOP: usize = 100;
/// The largest page; a larger `top` is clamped to it.
pub const MAX_TOP: usize = 1000;

/// Which page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// How many to skip.
    pub skip: usize,
    /// How many to return at most.
    pub top: usize,
}

impl PageRequest {
    /// Parses `top` and `skip` (also as `$top`, `$skip`) from a raw query string.
    pub fn from_query(query: Option<&str>) -> Result<Self, Problem> {
        let mut page = PageRequest {
            skip: 0,
            top: DEFAULT_TOP,
        };
        for (name, value) in query_pairs(query) {
            let target = match name.trim_start_matches('$') {
                "top" => &mut page.top,
                "skip" => &mut page.skip,
                _ => continue,
            };
            *target = value.parse().map_err(|_| {
                Problem::invalid(format!(
                    "`{name}` must be a non-negative integer, not `{value}`"
                ))
            })?;
        }
        page.top = page.top.min(MAX_TOP);
        Ok(page)
    }
}

/// One page of a collection.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items.
    pub value: Vec<T>,
    /// How many there are in all.
    pub count: usize,
    /// The next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

impl<T> Page<T> {
    /// A page of the collection at `path`, with a `nextLink` when more follow.
    pub fn new(path: &str, request: PageRequest, value: Vec<T>, count: usize) -> Self {
        let next_skip = request.skip.saturating_add(value.len());
        let next_link = (!value.is_empty() && next_skip < count)
            .then(|| format!("{path}?skip={next_skip}&top={}", request.top));
        Page {
            value,
            count,
            next_link,
        }
    }
}

/// `name=value` pairs of a query string (values are not percent-decoded: only numbers
/// are read from them).
pub fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_clamps() {
        let p = PageRequest::from_query(None).expect("ok");
        assert_eq!((p.skip, p.top), (0, DEFAULT_TOP));
        let p = PageRequest::from_query(Some("top=5&skip=10&x=y")).expect("ok");
        assert_eq!((p.skip, p.top), (10, 5));
        let p = PageRequest::from_query(Some("$top=5000")).expect("ok");
        assert_eq!(p.top, MAX_TOP);
        assert!(PageRequest::from_query(Some("top=-1")).is_err());
    }

    #[test]
    fn next_link_only_when_more_follow() {
        let r = PageRequest { skip: 0, top: 2 };
        let page = Page::new("/apis", r, vec![1, 2], 3);
        assert_eq!(page.next_link.as_deref(), Some("/apis?skip=2&top=2"));
        let page = Page::new("/apis", r, vec![1, 2], 2);
        assert_eq!(page.next_link, None);
        let page = Page::new(
            "/apis",
            PageRequest { skip: 0, top: 0 },
            Vec::<u8>::new(),
            2,
        );
        assert_eq!(page.next_link, None);
    }
}
