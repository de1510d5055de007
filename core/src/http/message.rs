//! HTTP messages as policies and call-outs see them: owned header fields, a
//! parsed URL and a buffered response. Plain data, shared by the policy
//! context, the call-out exchange and the sync protocol.

use bytes::Bytes;

/// Header fields of a message: names compared case-insensitively, order and
/// repeated fields kept.
#[derive(Default)]
pub struct Headers {
    entries: Vec<(String, String)>,
    /// Fields removed or cleared, emptied, their buffers kept so a connection
    /// that refills the same `Headers` request after request allocates nothing.
    spare: Vec<(String, String)>,
}

impl Clone for Headers {
    fn clone(&self) -> Self {
        Headers {
            entries: self.entries.clone(),
            spare: Vec::new(),
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Headers")
            .field("entries", &self.entries)
            .finish()
    }
}

impl Headers {
    /// No fields.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Every field, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of fields (a repeated name counts each time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` joined with `,` as APIM's `GetValueOrDefault` does.
    pub fn get_joined(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (n, v) in &self.entries {
            if n.eq_ignore_ascii_case(name) {
                match &mut out {
                    Some(s) => {
                        s.push(',');
                        s.push_str(v);
                    }
                    None => out = Some(v.clone()),
                }
            }
        }
        out
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Adds a field after the existing ones.
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Adds a field after the existing ones, copied into the buffers of a
    /// removed field when there is one.
    pub fn append_str(&mut self, name: &str, value: &str) {
        match self.spare.pop() {
            Some((mut n, mut v)) => {
                n.push_str(name);
                v.push_str(value);
                self.entries.push((n, v));
            }
            None => self.entries.push((name.to_string(), value.to_string())),
        }
    }

    /// Replaces every field named `name` with one field.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.entries.push((name.to_string(), value.into()));
    }

    /// Removes every field named `name` (their buffers are kept for reuse).
    pub fn remove(&mut self, name: &str) {
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].0.eq_ignore_ascii_case(name) {
                let mut field = self.entries.remove(i);
                field.0.clear();
                field.1.clear();
                self.spare.push(field);
            } else {
                i += 1;
            }
        }
    }

    /// Removes every field, keeping the buffers for the next fields appended
    /// with [`Headers::append_str`].
    pub fn clear(&mut self) {
        for mut field in self.entries.drain(..) {
            field.0.clear();
            field.1.clear();
            self.spare.push(field);
        }
    }

    /// The distinct names, in first-seen order.
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (n, _) in &self.entries {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
                out.push(n);
            }
        }
        out
    }
}

/// A URL as policies see and change it (`context.Request.Url`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or address, without port.
    pub host: String,
    /// Port (the scheme's default when the URL had none).
    pub port: u16,
    /// Path, starting with `/`, percent-encoded as received.
    pub path: String,
    /// Query parameters in order, names and values percent-decoded.
    pub query: Vec<(String, String)>,
}

impl Url {
    /// The first value of query parameter `name` (exact, case-sensitive match).
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `?a=1&b=2` (percent-encoded), or empty.
    pub fn query_string(&self) -> String {
        let mut out = String::new();
        self.write_query_string(&mut out);
        out
    }

    /// [`Url::query_string`], appended to `out`.
    pub fn write_query_string(&self, out: &mut String) {
        for (i, (n, v)) in self.query.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            super::percent::encode_component_into(n, out);
            out.push('=');
            super::percent::encode_component_into(v, out);
        }
    }

    /// The whole URL, as `Url.ToString()` gives it.
    pub fn to_url_string(&self) -> String {
        let default = match self.scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        let mut out = format!("{}://{}", self.scheme, self.host);
        if self.port != default {
            out.push_str(&format!(":{}", self.port));
        }
        out.push_str(&self.path);
        out.push_str(&self.query_string());
        out
    }
}

/// A response: the backend's, one a policy made, or a `send-request` result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase (`StatusReason`).
    pub reason: String,
    /// Header fields.
    pub headers: Headers,
    /// The body, when buffered.
    pub body: Option<Bytes>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_fields_lend_their_buffers_and_stay_invisible() {
        let mut h = Headers::new();
        h.append_str("Host", "a.example");
        h.append_str("X-Tier", "gold");
        h.append_str("x-tier", "silver");
        h.remove("X-TIER");
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![("Host", "a.example")]);
        h.append_str("X-Gateway", "portcullis");
        let copy = h.clone();
        assert_eq!(copy, h);
        assert_eq!(h.get("x-gateway"), Some("portcullis"));
        h.clear();
        assert!(h.is_empty());
        assert_ne!(copy, h);
        h.append_str("Accept", "*/*");
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![("Accept", "*/*")]);
        assert_eq!(
            format!("{h:?}"),
            r#"Headers { entries: [("Accept", "*/*")] }"#
        );
    }
}
