//! The SNI choice every HTTPS table makes: the exact name, then a wildcard one
//! label deep, then the default. Shared by the file certificates ([`super::CertSet`])
//! and the configuration's custom hostnames ([`super::hostnames`]).

use std::collections::HashMap;

/// Values by host name: exact names, wildcards (`*.example.com`, kept by
/// their suffix) and a default.
#[derive(Debug)]
pub struct NameTable<T> {
    exact: HashMap<String, T>,
    /// By the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<String, T>,
    default: Option<T>,
}

impl<T> Default for NameTable<T> {
    fn default() -> Self {
        NameTable {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
        }
    }
}

impl<T> NameTable<T> {
    /// Adds `value` for `name` (lowercase; `*.suffix` for a wildcard) unless
    /// the name has one already: the first given keeps it.
    pub fn insert(&mut self, name: &str, value: T) {
        let (table, name) = match name.strip_prefix("*.") {
            Some(suffix) => (&mut self.wildcard, suffix),
            None => (&mut self.exact, name),
        };
        table.entry(name.to_owned()).or_insert(value);
    }

    /// Sets the default, served when no name matches, unless one is set already.
    pub fn set_default(&mut self, value: T) {
        if self.default.is_none() {
            self.default = Some(value);
        }
    }

    /// Whether the table has no name and no default.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }

    /// The value for SNI name `sni`: exact, then a wildcard one label deep
    /// (`*.example.com` serves `api.example.com`, not `a.b.example.com`, as
    /// browsers match), then the default. Case and a trailing dot are ignored.
    pub fn choose(&self, sni: Option<&str>) -> Option<&T> {
        let Some(sni) = sni else {
            return self.default.as_ref();
        };
        // Allocates only for a name with capitals (rustls lowercases SNI
        // already, so never on the handshake path).
        let lower;
        let name = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = sni.to_ascii_lowercase();
            lower.as_str()
        } else {
            sni
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(value) = self.exact.get(name) {
            return Some(value);
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(value) = self.wildcard.get(parent) {
                return Some(value);
            }
        }
        self.default.as_ref()
    }
}
