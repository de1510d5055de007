//! Per-API operation trie: method and URL template to operation, most specific first.

use http::Method;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::path::{canonical, MAX_SEGMENT_LEN};
use super::template::{Segment, UrlTemplate};
use super::Capture;

/// Which methods an operation accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MethodMatch {
    /// `*`: any method.
    Any,
    /// Exactly this method (methods are case-sensitive).
    Exact(Method),
}

/// Operations whose template ends at a node, with the methods they accept.
type Endpoints = SmallVec<[(MethodMatch, u32); 2]>;

/// Picks the operation for `method`: an exact method beats `*`.
fn pick(endpoints: &Endpoints, method: &Method) -> Option<u32> {
    let exact = endpoints
        .iter()
        .find(|(m, _)| matches!(m, MethodMatch::Exact(e) if e == method));
    exact
        .or_else(|| endpoints.iter().find(|(m, _)| *m == MethodMatch::Any))
        .map(|&(_, op)| op)
}

#[derive(Debug, Default)]
struct Node {
    literals: FxHashMap<Box<[u8]>, usize>,
    param: Option<usize>,
    /// Templates ending exactly here.
    ends: Endpoints,
    /// Templates ending here with `/*`.
    rest: Endpoints,
}

/// The operations of one API, as a trie over template segments.
#[derive(Debug)]
pub(crate) struct OpTrie {
    nodes: Vec<Node>,
    /// Parameter names of each operation, in capture order.
    params: Vec<Box<[Box<str>]>>,
}

impl OpTrie {
    /// An empty trie for an API with `operations` operations.
    pub(crate) fn with_capacity(operations: usize) -> OpTrie {
        OpTrie {
            nodes: vec![Node::default()],
            params: Vec::with_capacity(operations),
        }
    }

    /// Adds operation `op` (the next index); on a duplicate shape and method, returns the other's index.
    pub(crate) fn insert(
        &mut self,
        op: u32,
        method: MethodMatch,
        template: &UrlTemplate,
    ) -> Result<(), u32> {
        let mut node = 0usize;
        for seg in template.segments() {
            let existing = match seg {
                Segment::Literal(lit) => self.nodes[node].literals.get(lit.as_bytes()).copied(),
                Segment::Param(_) => self.nodes[node].param,
            };
            node = match existing {
                Some(child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    match seg {
                        Segment::Literal(lit) => {
                            self.nodes[node]
                                .literals
                                .insert(lit.as_bytes().into(), child);
                        }
                        Segment::Param(_) => self.nodes[node].param = Some(child),
                    }
                    child
                }
            };
        }
        let target = if template.has_wildcard() {
            &mut self.nodes[node].rest
        } else {
            &mut self.nodes[node].ends
        };
        if let Some(&(_, other)) = target.iter().find(|(m, _)| *m == method) {
            return Err(other);
        }
        target.push((method, op));
        self.params
            .push(template.param_names().map(Box::from).collect());
        Ok(())
    }

    /// Parameter names of operation `op`, in capture order.
    pub(crate) fn param_names(&self, op: u32) -> &[Box<str>] {
        self.params.get(op as usize).map_or(&[], |p| &p[..])
    }

    /// Finds the most specific operation for `path[start..end]` (empty or starting with `/`).
    ///
    /// Captures of the successful branch are left in `caps` with empty names.
    pub(crate) fn find<'r>(
        &'r self,
        method: &Method,
        path: &[u8],
        start: usize,
        end: usize,
        caps: &mut SmallVec<[Capture<'r>; 8]>,
    ) -> Option<u32> {
        let mut buf = [0u8; MAX_SEGMENT_LEN];
        self.search(0, method, path, start, end, caps, &mut buf)
    }

    /// Depth-first search, literal before parameter before wildcard at every segment.
    ///
    /// Each trie node sits at a fixed segment depth, so a node is visited at most once
    /// per lookup: the work is bounded by the API's own trie, never exponential, and
    /// recursion depth by the longest template (at most `MAX_TEMPLATE_SEGMENTS`), not
    /// by the request. No heap allocation: segments are sub-slices of `path` (or
    /// canonicalized in `buf`, one stack buffer for the whole search), and `caps`
    /// stays inline up to 8 parameters.
    #[allow(clippy::too_many_arguments)] // private recursion; a struct would only rename them
    fn search<'r>(
        &'r self,
        node: usize,
        method: &Method,
        path: &[u8],
        pos: usize,
        end: usize,
        caps: &mut SmallVec<[Capture<'r>; 8]>,
        buf: &mut [u8; MAX_SEGMENT_LEN],
    ) -> Option<u32> {
        let n = &self.nodes[node];
        if pos >= end {
            // Nothing left: a template ending here, or `/*` matching an empty rest.
            return pick(&n.ends, method).or_else(|| pick(&n.rest, method));
        }
        // `path[pos]` is '/'; the segment runs to the next '/' or `end`.
        let seg_start = pos + 1;
        let seg_end = path[seg_start..end]
            .iter()
            .position(|&b| b == b'/')
            .map_or(end, |i| seg_start + i);
        let seg = &path[seg_start..seg_end];
        let literal = canonical(seg, buf).and_then(|c| n.literals.get(c)).copied();
        if let Some(child) = literal {
            if let Some(op) = self.search(child, method, path, seg_end, end, caps, buf) {
                return Some(op);
            }
        }
        if let Some(child) = n.param {
            if !seg.is_empty() {
                caps.push(Capture {
                    name: "",
                    start: seg_start,
                    end: seg_end,
                });
                if let Some(op) = self.search(child, method, path, seg_end, end, caps, buf) {
                    return Some(op);
                }
                caps.pop();
            }
        }
        pick(&n.rest, method)
    }
}
