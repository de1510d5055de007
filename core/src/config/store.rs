//! Where a gateway keeps the policies' shared state: in its own process
//! (`local`, the default) or in Redis, shared by every replica of the gateway.
//!
//! The setting comes from the gateway's flag or environment, or from the
//! gateway entity on the management plane (carried in its snapshot); the flag
//! wins. This module only models and checks it; the driver connects.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;

/// Default bound on one store call before the policy's failure rule applies.
pub const DEFAULT_TIMEOUT_MS: u64 = 100;
/// Default interval between an approximate counter's syncs with Redis.
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 200;
/// Default largest value the external cache stores (1 MiB).
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 1024 * 1024;

/// The shared-state store of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreSettings {
    /// `local`, or a `redis://` / `rediss://` URL.
    #[serde(default)]
    pub url: StoreUrl,
    /// How rate limits and quotas count on a shared store.
    #[serde(default)]
    pub counting: Counting,
    /// What limits do when the store cannot answer in time.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Bound on one store call, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Approximate counting: milliseconds between syncs with the store.
    #[serde(default = "default_sync_interval")]
    pub sync_interval_ms: u64,
    /// Prefix of every key this gateway writes; default `portcullis:{gateway id}:`,
    /// so the replicas of one gateway share state and other gateways do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Largest value the external cache stores, in bytes.
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_sync_interval() -> u64 {
    DEFAULT_SYNC_INTERVAL_MS
}

fn default_max_entry_bytes() -> u64 {
    DEFAULT_MAX_ENTRY_BYTES
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            url: StoreUrl::Local,
            counting: Counting::default(),
            on_failure: OnFailure::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            sync_interval_ms: DEFAULT_SYNC_INTERVAL_MS,
            key_prefix: None,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
        }
    }
}

impl StoreSettings {
    /// Checks the numbers: a timeout of 1 ms to 60 s, a sync interval of 10 ms
    /// to 60 s, a prefix without spaces or control characters.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Store(m));
        if !(1..=60_000).contains(&self.timeout_ms) {
            return bad(format!(
                "timeoutMs must be 1 to 60000, not {}",
                self.timeout_ms
            ));
        }
        if !(10..=60_000).contains(&self.sync_interval_ms) {
            return bad(format!(
                "syncIntervalMs must be 10 to 60000, not {}",
                self.sync_interval_ms
            ));
        }
        if let Some(p) = &self.key_prefix {
            if p.is_empty()
                || p.len() > 200
                || p.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return bad(
                    "keyPrefix must be 1 to 200 characters without spaces or control characters"
                        .into(),
                );
            }
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > 512 * 1024 * 1024 {
            return bad(format!(
                "maxEntryBytes must be 1 to 536870912, not {}",
                self.max_entry_bytes
            ));
        }
        Ok(())
    }

    /// The key prefix for gateway `gateway_id`.
    pub fn prefix_for(&self, gateway_id: &str) -> String {
        self.key_prefix
            .clone()
            .unwrap_or_else(|| format!("portcullis:{gateway_id}:"))
    }

    /// Whether the state is shared (a Redis URL).
    pub fn is_shared(&self) -> bool {
        matches!(self.url, StoreUrl::Redis(_))
    }

    /// The settings with the password hidden (for answers and logs).
    pub fn redacted(&self) -> StoreSettings {
        let mut s = self.clone();
        if let StoreUrl::Redis(r) = &mut s.url {
            if r.password.is_some() {
                r.password = Some("***".into());
            }
        }
        s
    }
}

/// How limits count on a shared store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Counting {
    /// Every decision is one atomic round trip: the replicas together never
    /// admit more than the limit.
    #[default]
    Exact,
    /// Counted locally, synced with the store every `syncIntervalMs`: no round
    /// trip on the request path, a bounded overshoot.
    Approximate,
}

/// What limits do when the store cannot answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The request goes on as if within limits (APIM's behaviour).
    #[default]
    Open,
    /// Limits refuse the request with a 503 and `Retry-After`.
    Closed,
}

/// `local` or a Redis URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreUrl {
    /// In process, this replica alone.
    #[default]
    Local,
    /// A Redis server.
    Redis(RedisUrl),
}

/// A parsed `redis://[user[:password]@]host[:port][/db]` or `rediss://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// TLS (`rediss://`).
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (default 6379).
    pub port: u16,
    /// ACL user name (`AUTH user password`).
    pub username: Option<String>,
    /// Password (`AUTH [user] password`).
    pub password: Option<String>,
    /// Database number (`SELECT`).
    pub db: u32,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        write!(f, "{}", self.display_redacted())
    }
}

impl RedisUrl {
    /// Parses a `redis://` or `rediss://` URL.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let bad = |m: &str| ConfigError::Store(format!("url: {m}"));
        let (tls, rest) = if let Some(r) = s.strip_prefix("redis://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("rediss://") {
            (true, r)
        } else {
            return Err(bad("must be 'local' or start with redis:// or rediss://"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(bad(
                "query parameters are not supported; use the store's own settings",
            ));
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (u, None),
                };
                let user = percent_decode(user).ok_or_else(|| bad("bad percent-encoding"))?;
                let pass = pass
                    .map(|p| percent_decode(p).ok_or_else(|| bad("bad percent-encoding")))
                    .transpose()?;
                match pass {
                    // `redis://secret@host` is a password alone, as redis-cli reads it.
                    None if !user.is_empty() => (None, Some(user)),
                    None => (None, None),
                    Some(p) => ((!user.is_empty()).then_some(user), Some(p)),
                }
            }
        };
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("unclosed '[' in the host"))?;
            let port = &r[end + 1..];
            (&r[..end], port.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let port = match port {
            None | Some("") => 6379,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be 1 to 65535"))?,
        };
        let db = match path.trim_start_matches('/') {
            "" => 0,
            d => d
                .parse::<u32>()
                .map_err(|_| bad("the path must be a database number"))?,
        };
        Ok(RedisUrl {
            tls,
            host: host.to_owned(),
            port,
            username,
            password,
            db,
        })
    }

    /// The URL with the password replaced by `***`.
    pub fn display_redacted(&self) -> String {
        self.render(true)
    }

    fn render(&self, redact: bool) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let user = self
            .username
            .as_deref()
            .map(percent_encode)
            .unwrap_or_default();
        let auth = match &self.password {
            Some(_) if redact => format!("{user}:***@"),
            Some(p) => format!("{user}:{}@", percent_encode(p)),
            None if !user.is_empty() => format!("{user}@"),
            None => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{auth}{host}:{}/{}", self.port, self.db)
    }
}

impl fmt::Display for StoreUrl {
    /// Shows the URL as configured, password included (it is written back to
    /// configuration); use [`RedisUrl::display_redacted`] for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Local => f.write_str("local"),
            StoreUrl::Redis(r) => f.write_str(&r.render(false)),
        }
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim() {
            "" | "local" => Ok(StoreUrl::Local),
            other => RedisUrl::parse(other).map(StoreUrl::Redis),
        }
    }
}

impl Serialize for StoreUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_users_write() {
        let r = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (r.tls, r.host.as_str(), r.port, r.db),
            (false, "127.0.0.1", 6380, 2)
        );
        assert_eq!(r.password, None);
        let r = RedisUrl::parse("rediss://app:p%40ss@cache.example:6390").unwrap();
        assert!(r.tls);
        assert_eq!(r.username.as_deref(), Some("app"));
        assert_eq!(r.password.as_deref(), Some("p@ss"));
        let r = RedisUrl::parse("redis://:secret@h").unwrap();
        assert_eq!(
            (r.username, r.password.as_deref(), r.port),
            (None, Some("secret"), 6379)
        );
        let r = RedisUrl::parse("redis://[::1]:7000").unwrap();
        assert_eq!((r.host.as_str(), r.port), ("::1", 7000));
        assert_eq!("local".parse::<StoreUrl>().unwrap(), StoreUrl::Local);
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for bad in [
            "http://h",
            "redis://",
            "redis://h:0",
            "redis://h:99999",
            "redis://h/x",
            "redis://h?db=1",
            "redis://[::1",
        ] {
            assert!(bad.parse::<StoreUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips_and_redacts() {
        let s = "rediss://app:p%40ss@cache:6390/3";
        let u: StoreUrl = s.parse().unwrap();
        assert_eq!(u.to_string(), s);
        let StoreUrl::Redis(r) = &u else { panic!() };
        assert_eq!(r.display_redacted(), "rediss://app:***@cache:6390/3");
        assert!(!format!("{r:?}").contains("p%40ss"));
        let settings: StoreSettings =
            serde_json::from_str(r#"{"url":"redis://:pw@h","counting":"approximate"}"#).unwrap();
        assert_eq!(settings.counting, Counting::Approximate);
        assert_eq!(settings.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert!(settings.validate().is_ok());
        assert!(!serde_json::to_string(&settings.redacted())
            .unwrap()
            .contains("pw"));
    }
}
