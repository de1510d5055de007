//! API versions and revisions in the router: where each API of a version set is
//! placed (a path segment, or a shared prefix told apart by a header or query
//! parameter) and the `;rev=N` prefixes of revisions, as APIM routes them.

use rustc_hash::FxHashMap;

use super::prefix::CanonicalSegment;
use super::source::{RouteKey, VersionInput, VersionScheme};

/// One prefix an API is routed at, and how it is picked there among versions.
#[derive(Debug)]
pub(crate) struct Place<'a> {
    /// The prefix's canonical segments.
    pub(crate) segments: Vec<CanonicalSegment>,
    /// `None`: the prefix is the API's alone.
    pub(crate) select: Option<Select<'a>>,
}

/// How a request reaches one version at a prefix shared by a version set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Select<'a> {
    /// The version set's id.
    pub(crate) set: &'a str,
    /// The header or query parameter naming the version.
    pub(crate) scheme: VersionScheme<'a>,
    /// The version; `None`: the one requests naming no version reach.
    pub(crate) version: Option<&'a str>,
}

/// Every prefix an API with `key` is routed at, its path being `segments`.
///
/// Segment scheme: `<path>/<version>` (and `<path>` for the default or
/// original version). Header and query schemes: `<path>`, shared by the set.
/// A revision is also routed with `;rev=N` after the last segment of each of
/// those (`/orders/v2;rev=3/...`); a non-current revision only there.
pub(crate) fn places<'a>(segments: &[CanonicalSegment], key: &RouteKey<'a>) -> Vec<Place<'a>> {
    let mut prefixes: Vec<Place<'a>> = Vec::with_capacity(2);
    let plain = |select| Place {
        segments: segments.to_vec(),
        select,
    };
    match key.version {
        None => prefixes.push(plain(None)),
        Some(v) => match v.scheme {
            VersionScheme::Segment => {
                if v.version.is_empty() {
                    prefixes.push(plain(None));
                } else {
                    let mut with_version = segments.to_vec();
                    with_version.push(v.version.as_bytes().into());
                    prefixes.push(Place {
                        segments: with_version,
                        select: None,
                    });
                    if v.default {
                        prefixes.push(plain(None));
                    }
                }
            }
            VersionScheme::Header(_) | VersionScheme::Query(_) => {
                let select = |version| Select {
                    set: v.set,
                    scheme: v.scheme,
                    version,
                };
                if !v.version.is_empty() {
                    prefixes.push(plain(Some(select(Some(v.version)))));
                }
                if v.default || v.version.is_empty() {
                    prefixes.push(plain(Some(select(None))));
                }
            }
        },
    }
    let mut out = Vec::with_capacity(prefixes.len() * 2);
    for place in prefixes {
        if let Some(n) = key.revision {
            out.push(Place {
                segments: with_revision(&place.segments, n),
                select: place.select,
            });
        }
        if key.current {
            out.push(place);
        }
    }
    out
}

/// `segments` with `;rev=n` after the last one (or as the only one at the root).
fn with_revision(segments: &[CanonicalSegment], n: u32) -> Vec<CanonicalSegment> {
    let suffix = format!(";rev={n}");
    let mut out = segments.to_vec();
    match out.last_mut() {
        Some(last) => {
            let mut seg = last.to_vec();
            seg.extend_from_slice(suffix.as_bytes());
            *last = seg.into();
        }
        None => out.push(suffix.as_bytes().into()),
    }
    out
}

/// What a prefix in the tries leads to.
#[derive(Debug)]
pub(crate) enum Target {
    /// One API (index).
    Api(u32),
    /// The versions of one version set sharing the prefix.
    Versions(Versions),
}

impl Target {
    /// An API routed here, to name in errors.
    pub(crate) fn any_api(&self) -> u32 {
        match self {
            Target::Api(api) => *api,
            Target::Versions(v) => v.first,
        }
    }
}

/// Where the version is read from, owned.
#[derive(Debug, PartialEq, Eq)]
enum By {
    Header(Box<str>),
    Query(Box<[u8]>),
}

/// The versions of one set at one prefix, by version identifier.
#[derive(Debug)]
pub(crate) struct Versions {
    set: Box<str>,
    by: By,
    by_version: FxHashMap<Box<[u8]>, u32>,
    default: Option<u32>,
    first: u32,
}

impl Versions {
    /// An empty group for `select`'s set; `first` names it in errors.
    pub(crate) fn new(select: &Select<'_>, first: u32) -> Versions {
        Versions {
            set: select.set.into(),
            by: by(select.scheme),
            by_version: FxHashMap::default(),
            default: None,
            first,
        }
    }

    /// Whether `select` belongs to this group (same set, same header or parameter).
    pub(crate) fn same_set(&self, select: &Select<'_>) -> bool {
        *self.set == *select.set && self.by == by(select.scheme)
    }

    /// Adds API `api`; on a version already taken, returns the API holding it.
    pub(crate) fn add(&mut self, select: &Select<'_>, api: u32) -> Result<(), u32> {
        let slot = match select.version {
            None => &mut self.default,
            Some(v) => match self.by_version.get(v.as_bytes()) {
                Some(&other) => return Err(other),
                None => {
                    self.by_version.insert(v.as_bytes().into(), api);
                    return Ok(());
                }
            },
        };
        match *slot {
            Some(other) => Err(other),
            None => {
                *slot = Some(api);
                Ok(())
            }
        }
    }

    /// The API the request's header or query parameter names; the default when
    /// it names none (absent or empty); `None` for an unknown version.
    pub(crate) fn pick<V: VersionInput + ?Sized>(&self, input: &V) -> Option<u32> {
        let named = match &self.by {
            By::Header(name) => input.header(name),
            By::Query(name) => input.query().and_then(|q| query_value(q, name)),
        };
        match named.filter(|v| !v.is_empty()) {
            Some(version) => self.by_version.get(version).copied(),
            None => self.default,
        }
    }
}

fn by(scheme: VersionScheme<'_>) -> By {
    match scheme {
        VersionScheme::Header(name) => By::Header(name.into()),
        VersionScheme::Query(name) => By::Query(name.as_bytes().into()),
        // Segment versions never share a prefix; an empty name matches nothing.
        VersionScheme::Segment => By::Header("".into()),
    }
}

/// The raw value of the first `name=` pair in `query`.
fn query_value<'q>(query: &'q [u8], name: &[u8]) -> Option<&'q [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let eq = pair.iter().position(|&b| b == b'=')?;
        (&pair[..eq] == name).then(|| &pair[eq + 1..])
    })
}
