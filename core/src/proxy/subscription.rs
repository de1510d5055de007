//! Finding the subscription key a request carries (header first, then query).

use crate::config::SubscriptionKeyParameterNames;
use crate::http::RequestHead;

/// APIM's message when an API needs a key and none was sent.
pub const MISSING_KEY: &str = "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.";
/// APIM's message when the key is unknown, inactive or not valid for the API.
pub const INVALID_KEY: &str = "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.";

/// Where the key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPlace {
    /// In the API's key header.
    Header,
    /// In the API's key query parameter.
    Query,
}

/// The subscription key in the request: the header named in `names`, else the query
/// parameter. An empty value counts as no key, as in APIM.
pub fn find_key<'h>(
    head: &'h RequestHead,
    names: &SubscriptionKeyParameterNames,
) -> Option<(&'h [u8], KeyPlace)> {
    if let Some(v) = head.header(&names.header) {
        if !v.is_empty() {
            return Some((v, KeyPlace::Header));
        }
    }
    let query = head.query()?;
    query
        .split(|&b| b == b'&')
        .filter_map(|pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            (&pair[..eq] == names.query.as_bytes()).then(|| &pair[eq + 1..])
        })
        .find(|v| !v.is_empty())
        .map(|v| (v, KeyPlace::Query))
}

/// The query string without parameter `name` (APIM does not forward the key).
pub fn query_without(query: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(query.len());
    for pair in query.split(|&b| b == b'&') {
        let key = pair.split(|&b| b == b'=').next().unwrap_or(pair);
        if key == name || pair.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(b'&');
        }
        out.extend_from_slice(pair);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Limits;
    use bytes::BytesMut;

    fn head(raw: &str) -> RequestHead {
        let mut buf = BytesMut::from(raw);
        RequestHead::parse(&mut buf, &Limits::default())
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn header_then_query() {
        let names = SubscriptionKeyParameterNames::default();
        let h = head(
            "GET /a?subscription-key=q HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key: h\r\n\r\n",
        );
        assert_eq!(find_key(&h, &names), Some((&b"h"[..], KeyPlace::Header)));
        let h = head("GET /a?x=1&subscription-key=q HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(find_key(&h, &names), Some((&b"q"[..], KeyPlace::Query)));
        assert_eq!(
            query_without(b"x=1&subscription-key=q&y", b"subscription-key"),
            b"x=1&y"
        );
        assert_eq!(
            query_without(b"subscription-key=q", b"subscription-key"),
            b""
        );
        let h = head("GET /a?subscription-keyX=q HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(find_key(&h, &names), None);
        let h = head("GET /a HTTP/1.1\r\nHost: x\r\nOcp-Apim-Subscription-Key:\r\n\r\n");
        assert_eq!(find_key(&h, &names), None);
    }

    #[test]
    fn custom_names() {
        let names = SubscriptionKeyParameterNames {
            header: "X-Key".into(),
            query: "k".into(),
        };
        let h = head("GET /a?k=abc HTTP/1.1\r\nHost: x\r\nx-key: def\r\n\r\n");
        assert_eq!(find_key(&h, &names), Some((&b"def"[..], KeyPlace::Header)));
    }
}
