//! Segment trie from API path prefixes to APIs: longest prefix in O(path segments).

use rustc_hash::FxHashMap;

use super::path::{canonical, MAX_SEGMENT_LEN};

/// A configured path segment in canonical form (see `path::canonical`).
pub(crate) type CanonicalSegment = Box<[u8]>;

/// One node per distinct prefix; `api` is set where a configured API path ends.
///
/// FxHash is not collision-resistant, which is fine here: only configured segments
/// are inserted, requests only look up, so a client cannot grow a collision chain.
#[derive(Debug, Default)]
struct Node {
    api: Option<u32>,
    children: FxHashMap<CanonicalSegment, usize>,
}

/// API path prefixes of one host (or of all APIs without hostnames).
#[derive(Debug)]
pub(crate) struct PrefixTrie {
    nodes: Vec<Node>,
}

impl Default for PrefixTrie {
    fn default() -> Self {
        PrefixTrie {
            nodes: vec![Node::default()],
        }
    }
}

impl PrefixTrie {
    /// Adds an API at the prefix made of `segments` (canonical, none for the root API).
    ///
    /// Returns the API that already owns exactly this prefix, if any.
    pub(crate) fn insert(&mut self, segments: &[CanonicalSegment], api: u32) -> Result<(), u32> {
        let mut node = 0usize;
        for seg in segments {
            node = match self.nodes[node].children.get(seg) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[node].children.insert(seg.clone(), child);
                    child
                }
            };
        }
        match self.nodes[node].api {
            Some(other) => Err(other),
            None => {
                self.nodes[node].api = Some(api);
                Ok(())
            }
        }
    }

    /// What is at exactly the prefix made of `segments`, if anything.
    pub(crate) fn at(&self, segments: &[CanonicalSegment]) -> Option<u32> {
        let mut node = 0usize;
        for seg in segments {
            node = *self.nodes[node].children.get(seg)?;
        }
        self.nodes[node].api
    }

    /// The API with the longest prefix of `path` on segment boundaries, and the prefix length in bytes.
    ///
    /// `path` starts with `/`. A prefix matches `/p`, `/p/` and `/p/...`, never `/px`.
    /// Walks one trie level per path segment and stops at the first segment with no
    /// child, so the cost does not depend on how many APIs there are. Allocation-free:
    /// segments are sub-slices of `path` (or canonicalized in a stack buffer), looked
    /// up by `&[u8]` borrow.
    pub(crate) fn longest(&self, path: &[u8]) -> Option<(u32, usize)> {
        let mut buf = [0u8; MAX_SEGMENT_LEN];
        let mut node = &self.nodes[0];
        let mut best = node.api.map(|api| (api, 0));
        // `pos` is always the index of a '/' in `path`.
        let mut pos = 0;
        while !node.children.is_empty() && pos < path.len() {
            let start = pos + 1;
            let end = path[start..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(path.len(), |i| start + i);
            let Some(&child) =
                canonical(&path[start..end], &mut buf).and_then(|seg| node.children.get(seg))
            else {
                break;
            };
            node = &self.nodes[child];
            if let Some(api) = node.api {
                best = Some((api, end));
            }
            pos = end;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<Box<[u8]>> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().into())
            .collect()
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let mut t = PrefixTrie::default();
        t.insert(&segs("users"), 1).unwrap();
        t.insert(&segs("users/admin"), 2).unwrap();
        t.insert(&segs("a/b/c"), 3).unwrap();
        assert_eq!(t.insert(&segs("users"), 9), Err(1));

        assert_eq!(t.longest(b"/users"), Some((1, 6)));
        assert_eq!(t.longest(b"/users/"), Some((1, 6)));
        assert_eq!(t.longest(b"/users/42"), Some((1, 6)));
        assert_eq!(t.longest(b"/usersX"), None);
        assert_eq!(t.longest(b"/users/admin"), Some((2, 12)));
        assert_eq!(t.longest(b"/users/admin/x"), Some((2, 12)));
        assert_eq!(t.longest(b"/users/adminx"), Some((1, 6)));
        assert_eq!(t.longest(b"/a/b"), None);
        assert_eq!(t.longest(b"/a/b/c/d"), Some((3, 6)));
        assert_eq!(t.longest(b"/"), None);

        t.insert(&segs(""), 0).unwrap();
        assert_eq!(t.longest(b"/"), Some((0, 0)));
        assert_eq!(t.longest(b"/a/b"), Some((0, 0)));
        assert_eq!(t.longest(b"/users/1"), Some((1, 6)));
        // Escaped unreserved characters are the same prefix; the raw length counts.
        assert_eq!(t.longest(b"/%75sers/1"), Some((1, 8)));
        assert_eq!(t.longest(b"/users/%61dmin"), Some((2, 14)));
    }
}
