//! URL templates of operations: `/users/{id}`, `/files/*`, `/search?q={q}`.

use super::path::{canonical, segment_is_safe, MAX_SEGMENT_LEN};

/// Most segments a template may have; bounds the router's recursion depth.
pub const MAX_TEMPLATE_SEGMENTS: usize = 64;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches a segment with this canonical form (case-sensitive; escapes of
    /// unreserved characters decoded, other escapes' hex uppercased).
    Literal(String),
    /// `{name}`: matches one non-empty segment and captures it.
    Param(String),
}

/// A parsed operation URL template, query part dropped, trailing `/` normalized away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    segments: Vec<Segment>,
    wildcard: bool,
}

/// Why a URL template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not start with `/`.
    #[error("must start with '/'")]
    MissingLeadingSlash,
    /// Two consecutive slashes.
    #[error("empty segment ('//')")]
    EmptySegment,
    /// A `{` or `}` that is not a whole `{name}` segment.
    #[error("parameter `{0}` must be a whole segment like `{{name}}`")]
    ParamNotWholeSegment(String),
    /// `{}` or a name with characters outside `A-Z a-z 0-9 _ - .`.
    #[error("invalid parameter name `{0}`")]
    InvalidParamName(String),
    /// The same parameter name twice.
    #[error("parameter `{0}` appears twice")]
    DuplicateParam(String),
    /// `*` anywhere but as the whole last segment.
    #[error("'*' is only allowed as the whole last segment ('/*')")]
    MisplacedWildcard,
    /// A literal segment no routable request path could contain.
    #[error("segment `{0}` can never match: no '.'/'..' segments, '\\', '%2F', '%5C', '#' or non-printable characters")]
    UnmatchableSegment(String),
    /// A literal with `%` escapes longer than 256 bytes once canonical.
    #[error("segment `{0}` is too long: at most 256 bytes with '%' escapes")]
    SegmentTooLong(String),
    /// More than [`MAX_TEMPLATE_SEGMENTS`] segments.
    #[error("more than {MAX_TEMPLATE_SEGMENTS} segments")]
    TooManySegments,
}

impl UrlTemplate {
    /// Parses an APIM URL template; everything from `?` on is ignored.
    pub fn parse(template: &str) -> Result<UrlTemplate, TemplateError> {
        let path = match template.split_once('?') {
            Some((p, _query)) => p,
            None => template,
        };
        if path.contains("//") {
            return Err(TemplateError::EmptySegment);
        }
        let body = path
            .strip_prefix('/')
            .ok_or(TemplateError::MissingLeadingSlash)?;
        // `/users/` and `/users` are the same template: the router ignores one
        // trailing slash on requests too.
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut segments = Vec::new();
        let mut wildcard = false;
        if body.is_empty() {
            return Ok(UrlTemplate { segments, wildcard });
        }
        let count = body.split('/').count();
        if count > MAX_TEMPLATE_SEGMENTS {
            return Err(TemplateError::TooManySegments);
        }
        for (i, seg) in body.split('/').enumerate() {
            if seg.is_empty() {
                return Err(TemplateError::EmptySegment);
            }
            if seg == "*" {
                if i + 1 != count {
                    return Err(TemplateError::MisplacedWildcard);
                }
                wildcard = true;
            } else if seg.contains('*') {
                return Err(TemplateError::MisplacedWildcard);
            } else if seg.contains(['{', '}']) {
                let name = seg
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .filter(|n| !n.contains(['{', '}']))
                    .ok_or_else(|| TemplateError::ParamNotWholeSegment(seg.to_owned()))?;
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                if !valid {
                    return Err(TemplateError::InvalidParamName(name.to_owned()));
                }
                let dup = segments
                    .iter()
                    .any(|s| matches!(s, Segment::Param(n) if n == name));
                if dup {
                    return Err(TemplateError::DuplicateParam(name.to_owned()));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else {
                let printable = seg.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
                if !printable || !segment_is_safe(seg.as_bytes()) {
                    return Err(TemplateError::UnmatchableSegment(seg.to_owned()));
                }
                let mut buf = [0u8; MAX_SEGMENT_LEN];
                let canonical = canonical(seg.as_bytes(), &mut buf)
                    .ok_or_else(|| TemplateError::SegmentTooLong(seg.to_owned()))?;
                // Canonicalizing printable ASCII only ever yields printable ASCII.
                let literal = String::from_utf8_lossy(canonical).into_owned();
                segments.push(Segment::Literal(literal));
            }
        }
        Ok(UrlTemplate { segments, wildcard })
    }

    /// The segments before a final wildcard.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the template ends in `/*`, matching any rest of the path (also none).
    pub fn has_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Parameter names in template order (the order of captures).
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_owned())
    }
    fn param(s: &str) -> Segment {
        Segment::Param(s.to_owned())
    }

    #[test]
    fn parses() {
        let t = UrlTemplate::parse("/users/{id}/orders").unwrap();
        assert_eq!(t.segments(), &[lit("users"), param("id"), lit("orders")]);
        assert!(!t.has_wildcard());
        assert_eq!(t.param_names().collect::<Vec<_>>(), ["id"]);

        let t = UrlTemplate::parse("/").unwrap();
        assert!(t.segments().is_empty());

        let t = UrlTemplate::parse("/users/").unwrap();
        assert_eq!(t.segments(), &[lit("users")]);

        let t = UrlTemplate::parse("/files/*").unwrap();
        assert_eq!(t.segments(), &[lit("files")]);
        assert!(t.has_wildcard());

        let t = UrlTemplate::parse("/*").unwrap();
        assert!(t.segments().is_empty());
        assert!(t.has_wildcard());

        let t = UrlTemplate::parse("/%75sers/caf%c3%a9").unwrap();
        assert_eq!(t.segments(), &[lit("users"), lit("caf%C3%A9")]);

        let t = UrlTemplate::parse("/search?q={q}&page={page}").unwrap();
        assert_eq!(t.segments(), &[lit("search")]);
    }

    #[test]
    fn rejects() {
        use TemplateError::*;
        for (t, e) in [
            ("users", MissingLeadingSlash),
            ("", MissingLeadingSlash),
            ("/a//b", EmptySegment),
            ("//", EmptySegment),
            ("/users/{id}.json", ParamNotWholeSegment("{id}.json".into())),
            ("/users/x{id}", ParamNotWholeSegment("x{id}".into())),
            ("/users/{id", ParamNotWholeSegment("{id".into())),
            ("/users/{{id}}", ParamNotWholeSegment("{{id}}".into())),
            ("/users/{}", InvalidParamName("".into())),
            ("/users/{a b}", InvalidParamName("a b".into())),
            ("/a/{id}/b/{id}", DuplicateParam("id".into())),
            ("/*/a", MisplacedWildcard),
            ("/a*", MisplacedWildcard),
            ("/a/../b", UnmatchableSegment("..".into())),
            ("/a/%2e", UnmatchableSegment("%2e".into())),
            ("/a%2Fb", UnmatchableSegment("a%2Fb".into())),
            ("/a\\b", UnmatchableSegment("a\\b".into())),
            ("/a b", UnmatchableSegment("a b".into())),
            ("/a#b", UnmatchableSegment("a#b".into())),
        ] {
            assert_eq!(UrlTemplate::parse(t), Err(e), "{t}");
        }
        let long = format!("/{}", "%20".repeat(100));
        assert_eq!(
            UrlTemplate::parse(&long),
            Err(SegmentTooLong("%20".repeat(100)))
        );
        let long = "/a".repeat(MAX_TEMPLATE_SEGMENTS + 1);
        assert_eq!(UrlTemplate::parse(&long), Err(TooManySegments));
        assert!(UrlTemplate::parse(&"/a".repeat(MAX_TEMPLATE_SEGMENTS)).is_ok());
    }
}
