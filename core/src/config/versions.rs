//! API version sets and revisions in the snapshot: the model, the checks that
//! a set of versions and revisions is consistent, and each API's place in the
//! router (APIM's versions and revisions).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::validate::check_id;
use super::{Api, ApiProblem, ConfigError, Snapshot};
use crate::router::{ApiSource, RouteKey, VersionKey, VersionScheme};

/// A version set: APIs that are versions of one API (APIM's `apiVersionSets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionSet {
    /// Unique id (`A-Z a-z 0-9 - . _ ~`).
    pub id: String,
    /// Name shown to people; may be empty.
    #[serde(default)]
    pub display_name: String,
    /// Free text for the portal; may be empty.
    #[serde(default)]
    pub description: String,
    /// How a request names the version it wants.
    pub versioning_scheme: VersioningScheme,
    /// The header naming the version (`Header` scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_header_name: Option<String>,
    /// The query parameter naming the version (`Query` scheme).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_query_name: Option<String>,
    /// The version a request that names none reaches (without it, only the
    /// "Original" version, the one with an empty `apiVersion`, is reached so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_version: Option<String>,
}

/// APIM's versioning schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersioningScheme {
    /// `/<api path>/<version>/...`.
    Segment,
    /// The header `versionHeaderName`.
    Header,
    /// The query parameter `versionQueryName`.
    Query,
}

/// The revision an API has when it names none.
pub(crate) fn first_revision() -> u32 {
    1
}

/// Whether `n` is the default revision (left out when serializing).
pub(crate) fn is_first_revision(n: &u32) -> bool {
    *n == 1
}

/// Whether `b` is true (the default of `isCurrent`, left out when serializing).
pub(crate) fn is_true(b: &bool) -> bool {
    *b
}

/// What is wrong with a version set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionSetProblem {
    /// The id is empty or has characters outside `A-Z a-z 0-9 - . _ ~`.
    #[error("invalid id: {0}")]
    InvalidId(&'static str),
    /// Another version set has the same id.
    #[error("duplicate version set id")]
    DuplicateId,
    /// The scheme's header or query parameter name is missing or unusable.
    #[error("versioningScheme {scheme:?} needs {field}: {reason}")]
    MissingName {
        /// The scheme.
        scheme: VersioningScheme,
        /// `versionHeaderName` or `versionQueryName`.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `defaultVersion` names no version of the set.
    #[error("defaultVersion `{0}` is no version of this set")]
    UnknownDefault(String),
    /// Both a `defaultVersion` and an "Original" (unversioned) API: which one a
    /// request naming no version reaches would be unclear.
    #[error("defaultVersion `{default}` and the original version api `{original}` both claim requests that name no version")]
    TwoDefaults {
        /// The set's `defaultVersion`.
        default: String,
        /// The API with an empty `apiVersion`.
        original: String,
    },
}

/// What is wrong with an API's version or revision fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionProblem {
    /// `apiVersionSetId` names no version set.
    #[error("apiVersionSetId `{0}` refers to no version set")]
    UnknownVersionSet(String),
    /// `apiVersion` without `apiVersionSetId`.
    #[error("apiVersion `{0}` needs an apiVersionSetId")]
    VersionWithoutSet(String),
    /// The version identifier cannot be routed.
    #[error("invalid apiVersion `{0}`: use up to 64 letters, digits, '-', '.', '_' or '~'")]
    InvalidVersion(String),
    /// Another current API of the same set has the same version.
    #[error("version `{version}` of version set `{set}` is already api `{other}`")]
    DuplicateVersion {
        /// The set.
        set: String,
        /// The version (`""`: the original).
        version: String,
        /// The other API's id.
        other: String,
    },
    /// `apiRevision` is 0.
    #[error("apiRevision must be 1 or more")]
    InvalidRevision,
    /// `apiRevisionOf` names no API.
    #[error("apiRevisionOf `{0}` refers to no API")]
    UnknownRevisionOf(String),
    /// `apiRevisionOf` names an API that is itself a non-current revision.
    #[error("apiRevisionOf `{0}` is itself a revision: name the API's current revision")]
    RevisionOfRevision(String),
    /// A revision of another API marked current: an API has one current revision.
    #[error("isCurrent is true but it is a revision of api `{0}`, which is current: an API has exactly one current revision")]
    TwoCurrent(String),
    /// A non-current revision that names no API: no current revision.
    #[error("isCurrent is false but apiRevisionOf names no API: an API needs exactly one current revision")]
    NoCurrent,
    /// Two revisions of one API with the same number.
    #[error("revision {revision} of api `{base}` is already api `{other}`")]
    DuplicateRevision {
        /// The API both are revisions of.
        base: String,
        /// The number both claim.
        revision: u32,
        /// The other revision's id.
        other: String,
    },
    /// A revision whose version set or version differs from its current revision's.
    #[error("a revision keeps the version of api `{0}`: apiVersionSetId and apiVersion must be the same")]
    VersionDiffers(String),
}

impl Api {
    /// The id of the API this is a revision of: its own for a current revision.
    pub fn revision_base(&self) -> &str {
        self.api_revision_of.as_deref().unwrap_or(&self.id)
    }
}

/// An API with the place the router gives it.
pub(crate) struct Routed<'a> {
    pub(crate) api: &'a Api,
    pub(crate) key: RouteKey<'a>,
}

impl ApiSource for Routed<'_> {
    type Operation = super::Operation;

    fn id(&self) -> &str {
        &self.api.id
    }

    fn path(&self) -> &str {
        &self.api.path
    }

    fn hostnames(&self) -> &[String] {
        &self.api.hostnames
    }

    fn operations(&self) -> &[super::Operation] {
        &self.api.operations
    }

    fn route_key(&self) -> RouteKey<'_> {
        self.key
    }
}

/// Checks version sets and every API's version and revision fields, and gives
/// each API (in order) its place in the router.
pub(crate) fn check(snapshot: &Snapshot) -> Result<Vec<Routed<'_>>, ConfigError> {
    let sets = check_sets(snapshot)?;
    let by_id: HashMap<&str, &Api> = snapshot.apis.iter().map(|a| (a.id.as_str(), a)).collect();
    // (set, version) of current APIs, and (base, revision) of every API.
    let mut versions: HashMap<(&str, &str), &str> = HashMap::new();
    let mut revisions: HashMap<(&str, u32), &str> = HashMap::new();
    let mut routed = Vec::with_capacity(snapshot.apis.len());
    for api in &snapshot.apis {
        let fail = |problem| ConfigError::api(&api.id, ApiProblem::Version(problem));
        let set = match (&api.api_version_set_id, &api.api_version) {
            (None, None) => None,
            (None, Some(v)) => return Err(fail(VersionProblem::VersionWithoutSet(v.clone()))),
            (Some(id), _) => Some(
                *sets
                    .get(id.as_str())
                    .ok_or_else(|| fail(VersionProblem::UnknownVersionSet(id.clone())))?,
            ),
        };
        let version = api.api_version.as_deref().unwrap_or("");
        if version.len() > 64
            || !version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(fail(VersionProblem::InvalidVersion(version.to_owned())));
        }
        if api.api_revision == 0 {
            return Err(fail(VersionProblem::InvalidRevision));
        }
        match (&api.api_revision_of, api.is_current) {
            (None, false) => return Err(fail(VersionProblem::NoCurrent)),
            (Some(base), current) => {
                let of = by_id
                    .get(base.as_str())
                    .ok_or_else(|| fail(VersionProblem::UnknownRevisionOf(base.clone())))?;
                if of.api_revision_of.is_some() {
                    return Err(fail(VersionProblem::RevisionOfRevision(base.clone())));
                }
                if current {
                    return Err(fail(VersionProblem::TwoCurrent(base.clone())));
                }
                if of.api_version_set_id != api.api_version_set_id
                    || of.api_version.as_deref().unwrap_or("") != version
                {
                    return Err(fail(VersionProblem::VersionDiffers(base.clone())));
                }
            }
            (None, true) => {}
        }
        let base = api.revision_base();
        if let Some(other) = revisions.insert((base, api.api_revision), &api.id) {
            return Err(fail(VersionProblem::DuplicateRevision {
                base: base.to_owned(),
                revision: api.api_revision,
                other: other.to_owned(),
            }));
        }
        if let (Some(set), true) = (set, api.is_current) {
            if let Some(other) = versions.insert((&set.id, version), &api.id) {
                return Err(fail(VersionProblem::DuplicateVersion {
                    set: set.id.clone(),
                    version: version.to_owned(),
                    other: other.to_owned(),
                }));
            }
        }
        let key = RouteKey {
            version: set.map(|set| VersionKey {
                set: &set.id,
                scheme: match set.versioning_scheme {
                    VersioningScheme::Segment => VersionScheme::Segment,
                    VersioningScheme::Header => {
                        VersionScheme::Header(set.version_header_name.as_deref().unwrap_or(""))
                    }
                    VersioningScheme::Query => {
                        VersionScheme::Query(set.version_query_name.as_deref().unwrap_or(""))
                    }
                },
                version,
                default: set.default_version.as_deref() == Some(version),
            }),
            revision: Some(api.api_revision),
            current: api.is_current,
        };
        routed.push(Routed { api, key });
    }
    for set in &snapshot.version_sets {
        let fail = |problem| ConfigError::VersionSet {
            set: set.id.clone(),
            problem,
        };
        if let Some(default) = &set.default_version {
            if !versions.contains_key(&(set.id.as_str(), default.as_str())) {
                return Err(fail(VersionSetProblem::UnknownDefault(default.clone())));
            }
            if let Some(original) = versions.get(&(set.id.as_str(), "")) {
                if !default.is_empty() {
                    return Err(fail(VersionSetProblem::TwoDefaults {
                        default: default.clone(),
                        original: (*original).to_owned(),
                    }));
                }
            }
        }
    }
    Ok(routed)
}

fn check_sets(snapshot: &Snapshot) -> Result<HashMap<&str, &VersionSet>, ConfigError> {
    let mut sets = HashMap::new();
    let mut ids = HashSet::new();
    for set in &snapshot.version_sets {
        let fail = |problem| ConfigError::VersionSet {
            set: set.id.clone(),
            problem,
        };
        check_id(&set.id).map_err(|r| fail(VersionSetProblem::InvalidId(r)))?;
        if !ids.insert(set.id.as_str()) {
            return Err(fail(VersionSetProblem::DuplicateId));
        }
        let (field, name) = match set.versioning_scheme {
            VersioningScheme::Segment => ("", None),
            VersioningScheme::Header => ("versionHeaderName", Some(&set.version_header_name)),
            VersioningScheme::Query => ("versionQueryName", Some(&set.version_query_name)),
        };
        if let Some(name) = name {
            let reason = match name.as_deref() {
                None | Some("") => Some("it is missing"),
                Some(n)
                    if !n
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.~!$'*+^`|".contains(&b)) =>
                {
                    Some("use letters, digits and '-', '_', '.', '~'")
                }
                Some(_) => None,
            };
            if let Some(reason) = reason {
                return Err(fail(VersionSetProblem::MissingName {
                    scheme: set.versioning_scheme,
                    field,
                    reason,
                }));
            }
        }
        sets.insert(set.id.as_str(), set);
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::config::CompiledConfig;
    use crate::router::{RouteOutcome, VersionInput};

    struct Req<'a> {
        header: Option<(&'a str, &'a str)>,
        query: Option<&'a str>,
    }

    impl VersionInput for Req<'_> {
        fn header(&self, name: &str) -> Option<&[u8]> {
            self.header
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        }
        fn query(&self) -> Option<&[u8]> {
            self.query.map(str::as_bytes)
        }
    }

    fn api(id: &str, path: &str, extra: &str) -> String {
        format!(
            r#"{{"id": "{id}", "path": "{path}", "serviceUrl": "http://backend.test", {extra}
               "operations": [{{"id": "any", "method": "*", "urlTemplate": "/*"}}]}}"#
        )
    }

    fn snapshot(sets: &str, apis: &[String]) -> Result<CompiledConfig, ConfigError> {
        let json = format!(
            r#"{{"revision": 1, "versionSets": [{sets}], "apis": [{}]}}"#,
            apis.join(",")
        );
        CompiledConfig::compile(Snapshot::from_json(json.as_bytes())?)
    }

    fn compile(sets: &str, apis: &[String]) -> CompiledConfig {
        snapshot(sets, apis).unwrap_or_else(|e| panic!("{e}"))
    }

    fn error(sets: &str, apis: &[String]) -> String {
        match snapshot(sets, apis) {
            Ok(_) => panic!("compiled"),
            Err(e) => e.to_string(),
        }
    }

    /// The id of the API `path` routes to, and the forwarded rest of the path.
    fn route(c: &CompiledConfig, path: &str, req: &Req<'_>) -> Option<(String, String)> {
        match c
            .router()
            .route_versioned(None, &Method::GET, path.as_bytes(), req)
        {
            RouteOutcome::Matched(m) => Some((
                c.api(m.api as usize).id.clone(),
                path[m.api_prefix_len..].to_owned(),
            )),
            _ => None,
        }
    }

    const NONE: Req<'static> = Req {
        header: None,
        query: None,
    };

    fn hit(id: &str, rest: &str) -> Option<(String, String)> {
        Some((id.to_owned(), rest.to_owned()))
    }

    #[test]
    fn segment_scheme_routes_the_version_segment_and_the_default() {
        let sets = r#"{"id": "orders", "versioningScheme": "Segment", "defaultVersion": "v1"}"#;
        let c = compile(
            sets,
            &[
                api(
                    "orders-v1",
                    "orders",
                    r#""apiVersionSetId": "orders", "apiVersion": "v1","#,
                ),
                api(
                    "orders-v2",
                    "orders",
                    r#""apiVersionSetId": "orders", "apiVersion": "v2","#,
                ),
            ],
        );
        assert_eq!(
            route(&c, "/orders/v1/items", &NONE),
            hit("orders-v1", "/items")
        );
        assert_eq!(
            route(&c, "/orders/v2/items", &NONE),
            hit("orders-v2", "/items")
        );
        assert_eq!(
            route(&c, "/orders/items", &NONE),
            hit("orders-v1", "/items")
        );
        assert_eq!(
            route(&c, "/orders/v3/items", &NONE),
            hit("orders-v1", "/v3/items")
        );
    }

    #[test]
    fn header_scheme_picks_by_header_and_falls_back_to_the_original() {
        let sets =
            r#"{"id": "s", "versioningScheme": "Header", "versionHeaderName": "Api-Version"}"#;
        let c = compile(
            sets,
            &[
                api("orig", "orders", r#""apiVersionSetId": "s","#),
                api(
                    "v2",
                    "orders",
                    r#""apiVersionSetId": "s", "apiVersion": "2024-01-01","#,
                ),
            ],
        );
        let with = |v| Req {
            header: Some(("api-version", v)),
            query: None,
        };
        assert_eq!(route(&c, "/orders/x", &with("2024-01-01")), hit("v2", "/x"));
        assert_eq!(route(&c, "/orders/x", &NONE), hit("orig", "/x"));
        assert_eq!(route(&c, "/orders/x", &with("")), hit("orig", "/x"));
        assert_eq!(route(&c, "/orders/x", &with("2023-01-01")), None);
    }

    #[test]
    fn query_scheme_picks_by_parameter_and_without_default_is_404() {
        let sets = r#"{"id": "s", "versioningScheme": "Query", "versionQueryName": "api-version"}"#;
        let c = compile(
            sets,
            &[
                api(
                    "a1",
                    "orders",
                    r#""apiVersionSetId": "s", "apiVersion": "v1","#,
                ),
                api(
                    "a2",
                    "orders",
                    r#""apiVersionSetId": "s", "apiVersion": "v2","#,
                ),
            ],
        );
        let q = |q| Req {
            header: None,
            query: Some(q),
        };
        assert_eq!(
            route(&c, "/orders/x", &q("a=1&api-version=v2")),
            hit("a2", "/x")
        );
        assert_eq!(
            route(&c, "/orders/x", &q("api-version=v1")),
            hit("a1", "/x")
        );
        assert_eq!(route(&c, "/orders/x", &q("a=1")), None);
        assert_eq!(route(&c, "/orders/x", &NONE), None);
    }

    #[test]
    fn revisions_are_reached_with_rev_and_only_the_current_at_the_plain_path() {
        let c = compile(
            "",
            &[
                api("orders", "orders", r#""apiRevision": 2,"#),
                api(
                    "orders-r1",
                    "orders",
                    r#""apiRevision": 1, "isCurrent": false, "apiRevisionOf": "orders","#,
                ),
                api(
                    "orders-r3",
                    "orders",
                    r#""apiRevision": 3, "isCurrent": false, "apiRevisionOf": "orders","#,
                ),
            ],
        );
        assert_eq!(route(&c, "/orders/x", &NONE), hit("orders", "/x"));
        assert_eq!(route(&c, "/orders;rev=1/x", &NONE), hit("orders-r1", "/x"));
        assert_eq!(route(&c, "/orders;rev=2/x", &NONE), hit("orders", "/x"));
        assert_eq!(route(&c, "/orders;rev=3/x", &NONE), hit("orders-r3", "/x"));
        assert_eq!(route(&c, "/orders;rev=4/x", &NONE), None);
    }

    #[test]
    fn revisions_of_versions_put_rev_after_the_version() {
        let sets = r#"{"id": "s", "versioningScheme": "Segment"}"#;
        let c = compile(
            sets,
            &[
                api(
                    "v1",
                    "orders",
                    r#""apiVersionSetId": "s", "apiVersion": "v1","#,
                ),
                api(
                    "v1-r2",
                    "orders",
                    r#""apiVersionSetId": "s", "apiVersion": "v1", "apiRevision": 2, "isCurrent": false, "apiRevisionOf": "v1","#,
                ),
            ],
        );
        assert_eq!(route(&c, "/orders/v1/x", &NONE), hit("v1", "/x"));
        assert_eq!(route(&c, "/orders/v1;rev=2/x", &NONE), hit("v1-r2", "/x"));
        assert_eq!(route(&c, "/orders/x", &NONE), None);
    }

    #[test]
    fn inconsistent_versions_and_revisions_are_errors_naming_the_api() {
        let seg = r#"{"id": "s", "versioningScheme": "Segment"}"#;
        assert_eq!(
            error("", &[api("a", "a", r#""apiVersionSetId": "nope","#)]),
            "api `a`: apiVersionSetId `nope` refers to no version set"
        );
        assert_eq!(
            error(
                seg,
                &[
                    api("a", "a", r#""apiVersionSetId": "s", "apiVersion": "v1","#),
                    api("b", "b", r#""apiVersionSetId": "s", "apiVersion": "v1","#),
                ]
            ),
            "api `b`: version `v1` of version set `s` is already api `a`"
        );
        assert_eq!(
            error(
                "",
                &[
                    api("a", "a", ""),
                    api("b", "a", r#""apiRevision": 2, "apiRevisionOf": "a","#),
                ]
            ),
            "api `b`: isCurrent is true but it is a revision of api `a`, which is current: an API has exactly one current revision"
        );
        assert_eq!(
            error("", &[api("a", "a", r#""isCurrent": false,"#)]),
            "api `a`: isCurrent is false but apiRevisionOf names no API: an API needs exactly one current revision"
        );
        assert_eq!(
            error(
                "",
                &[
                    api("a", "a", ""),
                    api("b", "a", r#""isCurrent": false, "apiRevisionOf": "a","#),
                ]
            ),
            "api `b`: revision 1 of api `a` is already api `a`"
        );
        assert_eq!(
            error("", &[api("a", "a", r#""apiVersion": "v1","#)]),
            "api `a`: apiVersion `v1` needs an apiVersionSetId"
        );
        assert_eq!(
            error(
                r#"{"id": "h", "versioningScheme": "Header"}"#,
                &[api("a", "a", "")]
            ),
            "version set `h`: versioningScheme Header needs versionHeaderName: it is missing"
        );
        assert_eq!(
            error(
                r#"{"id": "s", "versioningScheme": "Segment", "defaultVersion": "v9"}"#,
                &[api(
                    "a",
                    "a",
                    r#""apiVersionSetId": "s", "apiVersion": "v1","#
                )]
            ),
            "version set `s`: defaultVersion `v9` is no version of this set"
        );
        assert!(error(
            r#"{"id": "q", "versioningScheme": "Query", "versionQueryName": "v"}"#,
            &[
                api("a", "a", r#""apiVersionSetId": "q", "apiVersion": "1","#),
                api("b", "a", ""),
            ]
        )
        .starts_with("api `b`: path `/a` on any host is already used by api `a`"));
    }
}
