//! Routing: host and path to API, method and URL template to operation.
//!
//! Built once per snapshot ([`Router::new`]); [`Router::route`] then runs per request
//! without heap allocation and at a cost set by the request path's segment count, not
//! by the number of APIs:
//!
//! 1. The raw path is checked for dot segments and encoded separators ([`RouteOutcome::BadPath`]).
//! 2. The API is the longest path prefix on segment boundaries, looked up in a segment
//!    trie: first among the APIs restricted to the request's host, then among the
//!    APIs without hostnames. Once an API is chosen it is final, as in APIM.
//! 3. The operation is searched in the API's own template trie, most specific first.
//!
//! Path segments are compared in their RFC 3986 canonical form (escapes of
//! unreserved characters decoded), as the backend will read them; API paths and
//! template literals are case-sensitive.

mod operations;
mod path;
mod prefix;
mod source;
mod template;
mod versions;

#[cfg(test)]
mod tests;

use http::Method;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::http::host::normalize_hostname;
use operations::{MethodMatch, OpTrie};
use path::{canonical, host_key, is_routable, segment_is_safe, MAX_HOST_LEN, MAX_SEGMENT_LEN};
use prefix::{CanonicalSegment, PrefixTrie};

pub use source::{
    ApiRouteProblem, ApiSource, BuildError, NoVersionInput, OperationRouteProblem, OperationSource,
    RouteKey, VersionInput, VersionKey, VersionScheme,
};
pub use template::{Segment, TemplateError, UrlTemplate, MAX_TEMPLATE_SEGMENTS};
use versions::{Target, Versions};

/// Host and path to API, method and template to operation, for one snapshot.
#[derive(Debug)]
pub struct Router {
    /// Prefixes of APIs without hostnames.
    any_host: PrefixTrie,
    /// Prefixes of host-specific APIs, by normalized hostname.
    by_host: FxHashMap<Box<[u8]>, PrefixTrie>,
    /// Operation trie of each API, by API index.
    apis: Vec<OpTrie>,
    /// What each prefix leads to (the tries hold indices into this): one API,
    /// or the versions of a version set told apart by a header or query parameter.
    targets: Vec<Target>,
}

/// What [`Router::route`] decided for a request.
// Boxing the match would cost a heap allocation per request; a few hundred bytes
// moved on the stack once per request are cheaper.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteOutcome<'r> {
    /// An API and one of its operations match.
    Matched(RouteMatch<'r>),
    /// No API matches, or the API that matches has no matching operation (answer 404).
    NotFound,
    /// The path is not routable: no leading `/`, dot segment, encoded slash (answer 400).
    BadPath,
}

/// The API and operation a request was routed to, with its captured template parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'r> {
    /// Index into the snapshot's `apis`.
    pub api: u32,
    /// Index into that API's `operations`.
    pub operation: u32,
    /// Bytes of the path the API prefix consumed; forward `path[api_prefix_len..]`.
    pub api_prefix_len: usize,
    /// Template parameters in template order (inline, no allocation, up to 8).
    pub params: SmallVec<[Capture<'r>; 8]>,
}

/// One captured `{name}`: the parameter's name and its byte range in the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture<'r> {
    /// The parameter name from the URL template.
    pub name: &'r str,
    /// First byte of the segment in the path.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl RouteMatch<'_> {
    /// The raw (still percent-encoded) value of parameter `name`, given the routed path.
    pub fn param<'p>(&self, path: &'p [u8], name: &str) -> Option<&'p [u8]> {
        self.params
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| path.get(c.start..c.end))
    }
}

impl Router {
    /// Builds the router for `apis`, checking paths, hostnames, methods and templates.
    ///
    /// Errors name the API or operation: invalid path, hostname, method or template,
    /// two APIs with the same (host, path), two operations with the same method and
    /// template shape.
    pub fn new<A: ApiSource>(apis: &[A]) -> Result<Router, BuildError> {
        let limit = u32::MAX as usize;
        if apis.len() > limit {
            return Err(BuildError::TooMany {
                what: "APIs",
                limit,
            });
        }
        let mut router = Router {
            any_host: PrefixTrie::default(),
            by_host: FxHashMap::default(),
            apis: Vec::with_capacity(apis.len()),
            targets: Vec::with_capacity(apis.len()),
        };
        for (idx, api) in (0u32..).zip(apis) {
            let (path, segments) = check_api_path(api)?;
            let key = api.route_key();
            let places = versions::places(&segments, &key);
            let mut hosts = Vec::with_capacity(api.hostnames().len());
            for hostname in api.hostnames() {
                let host = normalize_hostname(hostname).map_err(|reason| BuildError::Api {
                    api: api.id().to_owned(),
                    problem: ApiRouteProblem::InvalidHostname {
                        hostname: hostname.clone(),
                        reason,
                    },
                })?;
                hosts.push(host);
            }
            for place in &places {
                if hosts.is_empty() {
                    router.place(apis, idx, place, None, path)?;
                }
                for host in &hosts {
                    router.place(apis, idx, place, Some(host), path)?;
                }
            }
            router.apis.push(build_operations(api)?);
        }
        Ok(router)
    }

    /// Puts API `idx` at one of its places in the trie of `host` (`None`: any host).
    fn place<A: ApiSource>(
        &mut self,
        apis: &[A],
        idx: u32,
        place: &versions::Place<'_>,
        host: Option<&String>,
        path: &str,
    ) -> Result<(), BuildError> {
        let trie = match host {
            None => &mut self.any_host,
            Some(h) => self.by_host.entry(h.as_bytes().into()).or_default(),
        };
        let api = &apis[idx as usize];
        let name = |i: u32| {
            apis.get(i as usize)
                .map_or_else(String::new, |a| a.id().to_owned())
        };
        let duplicate = |other: u32| BuildError::Api {
            api: api.id().to_owned(),
            problem: ApiRouteProblem::DuplicatePrefix {
                other: name(other),
                host: host.cloned(),
                path: path.to_owned(),
            },
        };
        match (trie.at(&place.segments), &place.select) {
            (None, None) => {
                let target = self.targets.len() as u32;
                self.targets.push(Target::Api(idx));
                trie.insert(&place.segments, target)
                    .map_err(|other| duplicate(self.targets[other as usize].any_api()))
            }
            (Some(t), None) => Err(duplicate(self.targets[t as usize].any_api())),
            (None, Some(select)) => {
                let target = self.targets.len() as u32;
                let mut versions = Versions::new(select, idx);
                versions.add(select, idx).map_err(&duplicate)?;
                self.targets.push(Target::Versions(versions));
                trie.insert(&place.segments, target)
                    .map_err(|other| duplicate(self.targets[other as usize].any_api()))
            }
            (Some(t), Some(select)) => match &mut self.targets[t as usize] {
                Target::Versions(v) if v.same_set(select) => {
                    v.add(select, idx).map_err(|other| BuildError::Api {
                        api: api.id().to_owned(),
                        problem: ApiRouteProblem::DuplicateVersion {
                            other: name(other),
                            version: select.version.unwrap_or("").to_owned(),
                            path: path.to_owned(),
                        },
                    })
                }
                other => Err(duplicate(other.any_api())),
            },
        }
    }

    /// Routes a request: `host` is the Host (or target authority) value, `path` the raw path without query.
    ///
    /// No heap allocation happens here: the host is lowercased into a stack buffer,
    /// path segments are sub-slices looked up by borrow in the tries, and captures
    /// stay inline in the `SmallVec` for templates with up to 8 parameters.
    pub fn route<'r>(
        &'r self,
        host: Option<&[u8]>,
        method: &Method,
        path: &[u8],
    ) -> RouteOutcome<'r> {
        self.route_versioned(host, method, path, &NoVersionInput)
    }

    /// [`Router::route`], reading the version header or query parameter of
    /// APIs whose version set names one from `input`.
    ///
    /// Picking a version is one hash lookup, whatever the number of versions.
    pub fn route_versioned<'r, V: VersionInput + ?Sized>(
        &'r self,
        host: Option<&[u8]>,
        method: &Method,
        path: &[u8],
        input: &V,
    ) -> RouteOutcome<'r> {
        if !is_routable(path) {
            return RouteOutcome::BadPath;
        }
        let Some((target, prefix_len)) = self.find_api(host, path) else {
            return RouteOutcome::NotFound;
        };
        let api = match self.targets.get(target as usize) {
            Some(Target::Api(api)) => *api,
            Some(Target::Versions(v)) => match v.pick(input) {
                Some(api) => api,
                None => return RouteOutcome::NotFound,
            },
            None => return RouteOutcome::NotFound,
        };
        let Some(ops) = self.apis.get(api as usize) else {
            return RouteOutcome::NotFound;
        };
        // One trailing slash is ignored, so `/users/42/` matches `/users/{id}` as
        // templates are normalized the same way.
        let end = match path.last() {
            Some(b'/') if path.len() > prefix_len => path.len() - 1,
            _ => path.len(),
        };
        let mut params = SmallVec::new();
        let Some(operation) = ops.find(method, path, prefix_len, end, &mut params) else {
            return RouteOutcome::NotFound;
        };
        for (cap, name) in params.iter_mut().zip(ops.param_names(operation)) {
            cap.name = name;
        }
        RouteOutcome::Matched(RouteMatch {
            api,
            operation,
            api_prefix_len: prefix_len,
            params,
        })
    }

    /// Host-specific APIs first; APIs without hostnames when none of those matches.
    fn find_api(&self, host: Option<&[u8]>, path: &[u8]) -> Option<(u32, usize)> {
        if !self.by_host.is_empty() {
            let mut buf = [0u8; MAX_HOST_LEN];
            let hit = host
                .and_then(|h| host_key(h, &mut buf))
                .and_then(|key| self.by_host.get(key))
                .and_then(|trie| trie.longest(path));
            if hit.is_some() {
                return hit;
            }
        }
        self.any_host.longest(path)
    }
}

/// The API's normalized path and its canonical segments, checked to be matchable by some request.
fn check_api_path<A: ApiSource>(api: &A) -> Result<(&str, Vec<CanonicalSegment>), BuildError> {
    let path = api.path().trim_matches('/');
    let invalid = |reason| BuildError::Api {
        api: api.id().to_owned(),
        problem: ApiRouteProblem::InvalidPath {
            path: api.path().to_owned(),
            reason,
        },
    };
    if path.contains(['?', '#']) {
        return Err(invalid("must not contain '?' or '#'"));
    }
    if path.contains(['{', '}']) {
        return Err(invalid(
            "must not contain '{' or '}' (templates belong in operations)",
        ));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "must not contain whitespace, control or non-ASCII characters (percent-encode them)",
        ));
    }
    let mut segments = Vec::new();
    if path.is_empty() {
        return Ok((path, segments));
    }
    for seg in path.split('/') {
        if seg.is_empty() {
            return Err(invalid("empty segment ('//')"));
        }
        if !segment_is_safe(seg.as_bytes()) {
            return Err(invalid(
                "no '.'/'..' segments, '\\', '%2F' or '%5C': such requests are refused",
            ));
        }
        let mut buf = [0u8; MAX_SEGMENT_LEN];
        let canonical = canonical(seg.as_bytes(), &mut buf)
            .ok_or_else(|| invalid("a segment with '%' escapes is longer than 256 bytes"))?;
        segments.push(canonical.into());
    }
    Ok((path, segments))
}

fn build_operations<A: ApiSource>(api: &A) -> Result<OpTrie, BuildError> {
    let operations = api.operations();
    let limit = u32::MAX as usize;
    if operations.len() > limit {
        return Err(BuildError::TooMany {
            what: "operations in one API",
            limit,
        });
    }
    let mut trie = OpTrie::with_capacity(operations.len());
    for (idx, op) in (0u32..).zip(operations) {
        let fail = |problem| BuildError::Operation {
            api: api.id().to_owned(),
            operation: op.id().to_owned(),
            problem,
        };
        let method = parse_method(op.method()).map_err(|reason| {
            fail(OperationRouteProblem::InvalidMethod {
                method: op.method().to_owned(),
                reason,
            })
        })?;
        let template = UrlTemplate::parse(op.url_template()).map_err(|reason| {
            fail(OperationRouteProblem::InvalidTemplate {
                template: op.url_template().to_owned(),
                reason,
            })
        })?;
        trie.insert(idx, method, &template).map_err(|other| {
            let other = operations
                .get(other as usize)
                .map_or_else(String::new, |o| o.id().to_owned());
            fail(OperationRouteProblem::Duplicate { other })
        })?;
    }
    Ok(trie)
}

/// `*`, or an HTTP method token; lowercase spellings of standard methods are refused.
fn parse_method(method: &str) -> Result<MethodMatch, &'static str> {
    if method == "*" {
        return Ok(MethodMatch::Any);
    }
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~";
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TCHAR.contains(&b))
    {
        return Err("not an HTTP method token");
    }
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    // Methods are case-sensitive on the wire, so `get` would silently match nothing.
    if STANDARD
        .iter()
        .any(|s| s.eq_ignore_ascii_case(method) && *s != method)
    {
        return Err("methods are case-sensitive: write standard methods in uppercase");
    }
    Method::from_bytes(method.as_bytes())
        .map(MethodMatch::Exact)
        .map_err(|_| "not an HTTP method token")
}
