//! Response caching (`cache-lookup`, `cache-store`) and value caching
//! (`cache-lookup-value`, `cache-store-value`, `cache-remove-value`):
//! compiled configs, cache keys, the store rules, and a compact encoding of a
//! `Response` for the [`CacheStore`](super::cache_store::CacheStore).
//!
//! For the pipeline: inbound `cache-lookup` computes `cache_key(ctx)`; `None`
//! means no lookup (and no store). A hit is decoded with `decode_response`
//! and returned at once (add `downstream_cache_control`). On a miss keep the
//! key; in outbound `cache-store` calls `ttl_to_store(...)` and, if `Some`,
//! stores `encode_response(&response)` under the key for that TTL.
//! The `*-value` policies evaluate their key/value and use the store directly;
//! values are stored as their text (`Value::to_display_string`).

// `Failure` carries the prepared response by value; it is the pipeline's type.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::attrs;
use super::context::{Context, Headers, Response};
use super::error::{Failure, PolicyError};
use super::param::{eval_text, Param, ParamValue};
use super::xml::Element;
use crate::expr::Template;

/// Whether a response came from the gateway's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheStatus {
    /// No cache policy looked the request up.
    #[default]
    None,
    /// Answered from the cache.
    Hit,
    /// Looked up, not found, answered by the backend.
    Miss,
}

impl CacheStatus {
    /// The lowercase name used in logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::None => "none",
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
        }
    }

    /// True when the status is `None` (so it is left out of JSON).
    pub fn is_none(&self) -> bool {
        *self == CacheStatus::None
    }
}

/// Which cache a `cache-*` policy uses. The store decides: `external` goes to
/// the gateway's shared store (Redis) and, with none configured, misses and
/// stores nothing (logged and counted, never served from the built-in cache);
/// `prefer-external` uses the shared store if there is one, else the built-in
/// cache, as APIM does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachingType {
    /// The built-in cache.
    Internal,
    /// The external (Redis) cache only.
    External,
    /// External if configured, else internal.
    PreferExternal,
}

fn caching_type(el: &Element) -> Result<CachingType, PolicyError> {
    match el.attr("caching-type").map(str::trim) {
        None | Some("prefer-external") => Ok(CachingType::PreferExternal),
        Some("internal") => Ok(CachingType::Internal),
        Some("external") => Ok(CachingType::External),
        Some(other) => Err(PolicyError::at(
            el,
            format!("caching-type must be internal, external or prefer-external, not '{other}'"),
        )),
    }
}

/// Whether and how clients and proxies may cache the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamCaching {
    /// No downstream caching (headers left as they are).
    None,
    /// Private caches only.
    Private,
    /// Private and shared caches.
    Public,
}

impl ParamValue for DownstreamCaching {
    const EXPECTED: &'static str = "none, private or public";
    fn parse_param(s: &str) -> Option<Self> {
        match s.trim() {
            "none" => Some(DownstreamCaching::None),
            "private" => Some(DownstreamCaching::Private),
            "public" => Some(DownstreamCaching::Public),
            _ => None,
        }
    }
}

/// `<cache-lookup>`.
#[derive(Debug, Clone)]
pub struct CacheLookup {
    /// Cache per developer (here: per subscription, which is never coarser).
    pub vary_by_developer: Param<bool>,
    /// Cache per developer group (here: per subscription, never coarser).
    pub vary_by_developer_groups: Param<bool>,
    /// Downstream caching.
    pub downstream_caching_type: Param<DownstreamCaching>,
    /// Adds `must-revalidate` downstream (default true).
    pub must_revalidate: Param<bool>,
    /// Allows caching requests with `Authorization` (default false).
    pub allow_private_response_caching: Param<bool>,
    /// Which cache.
    pub caching_type: CachingType,
    /// Headers whose values split the cache, lower case, sorted.
    pub vary_by_headers: Vec<String>,
    /// Query parameters whose values split the cache, sorted.
    pub vary_by_query_parameters: Vec<String>,
}

/// Appends a length-prefixed part so no value can imitate a separator.
fn part(out: &mut String, tag: &str, s: &str) {
    out.push_str(tag);
    out.push_str(&s.len().to_string());
    out.push(':');
    out.push_str(s);
}

impl CacheLookup {
    /// Compiles `<cache-lookup>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "vary-by-developer",
                "vary-by-developer-groups",
                "downstream-caching-type",
                "must-revalidate",
                "allow-private-response-caching",
                "caching-type",
            ],
        )?;
        attrs::only_children(el, &["vary-by-header", "vary-by-query-parameter"])?;
        let mut headers: Vec<String> = Vec::new();
        for h in el.children_named("vary-by-header") {
            let name = h.text().trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(PolicyError::at(h, "<vary-by-header> must name a header"));
            }
            headers.push(name);
        }
        let mut params: Vec<String> = Vec::new();
        for q in el.children_named("vary-by-query-parameter") {
            // APIM lets one element list several, separated by `;`.
            for p in q.text().split(';').map(str::trim).filter(|p| !p.is_empty()) {
                params.push(p.to_string());
            }
        }
        headers.sort();
        headers.dedup();
        params.sort();
        params.dedup();
        Ok(CacheLookup {
            vary_by_developer: Param::attr_or(el, "vary-by-developer", false)?,
            vary_by_developer_groups: Param::attr_or(el, "vary-by-developer-groups", false)?,
            downstream_caching_type: Param::attr_or(
                el,
                "downstream-caching-type",
                DownstreamCaching::None,
            )?,
            must_revalidate: Param::attr_or(el, "must-revalidate", true)?,
            allow_private_response_caching: Param::attr_or(
                el,
                "allow-private-response-caching",
                false,
            )?,
            caching_type: caching_type(el)?,
            vary_by_headers: headers,
            vary_by_query_parameters: params,
        })
    }

    /// The cache key of this request, or `None` when it must not use the cache
    /// (not a GET, or it carries `Authorization` without
    /// `allow-private-response-caching`).
    pub fn cache_key(&self, ctx: &Context) -> Result<Option<String>, Failure> {
        let req = &ctx.request;
        if !req.method.eq_ignore_ascii_case("GET") {
            return Ok(None);
        }
        if req.headers.contains("Authorization")
            && !self.allow_private_response_caching.resolve(ctx)?
        {
            return Ok(None);
        }
        let mut key = String::from("response");
        part(&mut key, "|a", &ctx.fixed.api.id);
        part(&mut key, "|o", &ctx.fixed.operation.id);
        part(&mut key, "|p", &req.original_url.path);
        for name in &self.vary_by_query_parameters {
            let values: Vec<&str> = req
                .original_url
                .query
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            part(&mut key, "|q", name);
            // Absent and empty differ.
            if values.is_empty() {
                key.push('-');
            } else {
                part(&mut key, "=", &values.join(","));
            }
        }
        for name in &self.vary_by_headers {
            part(&mut key, "|h", name);
            match req.headers.get_joined(name) {
                Some(v) => part(&mut key, "=", &v),
                None => key.push('-'),
            }
        }
        if self.vary_by_developer.resolve(ctx)? || self.vary_by_developer_groups.resolve(ctx)? {
            let sub = ctx
                .fixed
                .subscription
                .as_ref()
                .map_or("", |s| s.id.as_str());
            part(&mut key, "|d", sub);
        }
        Ok(Some(key))
    }

    /// The `Cache-Control` to send with a response served or stored under this
    /// policy, `ttl` being its remaining life; `None` leaves the header alone.
    pub fn downstream_cache_control(
        &self,
        ctx: &Context,
        ttl: Duration,
    ) -> Result<Option<String>, Failure> {
        let scope = match self.downstream_caching_type.resolve(ctx)? {
            DownstreamCaching::None => return Ok(None),
            DownstreamCaching::Private => "private",
            DownstreamCaching::Public => "public",
        };
        let mut v = format!("{scope}, max-age={}", ttl.as_secs());
        if self.must_revalidate.resolve(ctx)? {
            v.push_str(", must-revalidate");
        }
        Ok(Some(v))
    }
}

/// `<cache-store>`.
#[derive(Debug, Clone)]
pub struct CacheStorePolicy {
    /// Time to live in seconds.
    pub duration: Param<u64>,
    /// Store any status, not just 200 (default false).
    pub cache_response: Param<bool>,
}

fn cache_control_has(headers: &Headers, directive: &str) -> bool {
    headers.get_all("Cache-Control").any(|v| {
        v.split(',').any(|d| {
            d.split('=')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(directive))
        })
    })
}

impl CacheStorePolicy {
    /// Compiles `<cache-store>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["duration", "cache-response"])?;
        attrs::only_children(el, &[])?;
        Ok(CacheStorePolicy {
            duration: Param::required(el, "duration")?,
            cache_response: Param::attr_or(el, "cache-response", false)?,
        })
    }

    /// How long to store `response` for this request, or `None` if it must not
    /// be stored: only GETs; only 200 unless `cache-response`; never
    /// `Cache-Control: no-store`; `private`, `Set-Cookie` or a request with
    /// `Authorization` only with `allow-private-response-caching`; never `Vary: *`.
    pub fn ttl_to_store(
        &self,
        lookup: &CacheLookup,
        ctx: &Context,
        response: &Response,
    ) -> Result<Option<Duration>, Failure> {
        if !ctx.request.method.eq_ignore_ascii_case("GET") {
            return Ok(None);
        }
        if response.status != 200 && !self.cache_response.resolve(ctx)? {
            return Ok(None);
        }
        let h = &response.headers;
        if cache_control_has(h, "no-store") || h.get_all("Vary").any(|v| v.trim() == "*") {
            return Ok(None);
        }
        let private = cache_control_has(h, "private")
            || h.contains("Set-Cookie")
            || ctx.request.headers.contains("Authorization");
        if private && !lookup.allow_private_response_caching.resolve(ctx)? {
            return Ok(None);
        }
        let secs = self.duration.resolve(ctx)?;
        Ok((secs > 0).then(|| Duration::from_secs(secs)))
    }
}

/// `<cache-lookup-value>`.
#[derive(Debug, Clone)]
pub struct CacheLookupValue {
    /// The key.
    pub key: Template,
    /// Assigned on a miss (`null` when absent).
    pub default_value: Option<Template>,
    /// The variable to set.
    pub variable_name: String,
    /// Which cache.
    pub caching_type: CachingType,
}

/// `<cache-store-value>`.
#[derive(Debug, Clone)]
pub struct CacheStoreValue {
    /// The key.
    pub key: Template,
    /// The value.
    pub value: Template,
    /// Time to live in seconds.
    pub duration: Param<u64>,
    /// Which cache.
    pub caching_type: CachingType,
}

/// `<cache-remove-value>`.
#[derive(Debug, Clone)]
pub struct CacheRemoveValue {
    /// The key.
    pub key: Template,
    /// Which cache.
    pub caching_type: CachingType,
}

/// The store key of a value cached by key, apart from response keys.
pub fn value_key(key: &str) -> String {
    let mut k = String::from("value");
    part(&mut k, "|k", key);
    k
}

impl CacheLookupValue {
    /// Compiles `<cache-lookup-value>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &["key", "default-value", "variable-name", "caching-type"],
        )?;
        attrs::only_children(el, &[])?;
        Ok(CacheLookupValue {
            key: attrs::required_template(el, "key")?,
            default_value: attrs::template(el, "default-value")?,
            variable_name: attrs::required(el, "variable-name")?.trim().to_string(),
            caching_type: caching_type(el)?,
        })
    }

    /// The store key for this request.
    pub fn store_key(&self, ctx: &Context) -> Result<String, Failure> {
        Ok(value_key(&eval_text(&self.key, ctx)?))
    }
}

impl CacheStoreValue {
    /// Compiles `<cache-store-value>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["key", "value", "duration", "caching-type"])?;
        attrs::only_children(el, &[])?;
        Ok(CacheStoreValue {
            key: attrs::required_template(el, "key")?,
            value: attrs::required_template(el, "value")?,
            duration: Param::required(el, "duration")?,
            caching_type: caching_type(el)?,
        })
    }

    /// The store key, value bytes and TTL for this request.
    pub fn resolve(&self, ctx: &Context) -> Result<(String, Bytes, Duration), Failure> {
        Ok((
            value_key(&eval_text(&self.key, ctx)?),
            Bytes::from(eval_text(&self.value, ctx)?),
            Duration::from_secs(self.duration.resolve(ctx)?),
        ))
    }
}

impl CacheRemoveValue {
    /// Compiles `<cache-remove-value>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["key", "caching-type"])?;
        attrs::only_children(el, &[])?;
        Ok(CacheRemoveValue {
            key: attrs::required_template(el, "key")?,
            caching_type: caching_type(el)?,
        })
    }

    /// The store key for this request.
    pub fn store_key(&self, ctx: &Context) -> Result<String, Failure> {
        Ok(value_key(&eval_text(&self.key, ctx)?))
    }
}

const MAGIC: &[u8; 4] = b"PCR1";

/// Serialises a response compactly: magic, status, reason, headers, body,
/// lengths as u32 big-endian.
pub fn encode_response(r: &Response) -> Bytes {
    let body = r.body.as_deref().unwrap_or(&[]);
    let hdr_len: usize = r.headers.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    let mut out = BytesMut::with_capacity(16 + r.reason.len() + hdr_len + body.len());
    out.put_slice(MAGIC);
    out.put_u16(r.status);
    put_str(&mut out, r.reason.as_bytes());
    out.put_u32(u32::try_from(r.headers.len()).unwrap_or(u32::MAX));
    for (n, v) in r.headers.iter() {
        put_str(&mut out, n.as_bytes());
        put_str(&mut out, v.as_bytes());
    }
    match &r.body {
        None => out.put_u8(0),
        Some(b) => {
            out.put_u8(1);
            put_str(&mut out, b);
        }
    }
    out.freeze()
}

fn put_str(out: &mut BytesMut, s: &[u8]) {
    out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.put_slice(s);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// Reads what `encode_response` wrote; `None` if the bytes are not such a record.
pub fn decode_response(data: &Bytes) -> Option<Response> {
    let mut r = Reader { buf: data };
    if r.take(4)? != MAGIC {
        return None;
    }
    let s = r.take(2)?;
    let status = u16::from_be_bytes([s[0], s[1]]);
    let reason = r.string()?;
    let count = r.u32()?;
    let mut headers = Headers::new();
    for _ in 0..count {
        // Each header takes at least 8 bytes, so a bogus count fails fast.
        let name = r.string()?;
        let value = r.string()?;
        headers.append(name, value);
    }
    let body = match r.take(1)?[0] {
        0 => None,
        1 => {
            let b = r.bytes()?;
            // Share the cached buffer instead of copying the body.
            let start = data.len() - r.buf.len() - b.len();
            Some(data.slice(start..start + b.len()))
        }
        _ => return None,
    };
    if !r.buf.is_empty() {
        return None;
    }
    Some(Response {
        status,
        reason,
        headers,
        body,
    })
}

#[cfg(test)]
#[path = "response_cache_tests.rs"]
mod tests;
