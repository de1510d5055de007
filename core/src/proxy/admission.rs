//! Admission: the answer a request gets from its head and the configuration
//! alone, before any policy runs. Which API and operation it is for (routing),
//! whether that API is offered over the connection's scheme, whether the body
//! is too large to accept, and who the caller is (subscription key, open
//! product), or which 4xx it gets instead.
//!
//! Pure: no connection state, no telemetry, no clock. The connection machine
//! records what [`admit`] decided and writes the answer.

use crate::config::{CompiledConfig, KeyCheck, Scheme};
use crate::http::{BodyFraming, RequestHead};
use crate::router::{RouteMatch, RouteOutcome, VersionInput};

use super::subscription::{find_key, query_without, KeyPlace, INVALID_KEY, MISSING_KEY};

/// What the connection brings to admission besides the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// The scheme the client reached the gateway over.
    pub scheme: Scheme,
    /// Largest request body accepted (`None`: no limit).
    pub max_body_bytes: Option<u64>,
    /// The port clients reach the HTTPS listener on, when there is one: where
    /// an API's `httpsRedirect` sends plain HTTP requests.
    pub https_port: Option<u16>,
}

/// Whether the subscription key must be removed from the forwarded request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum KeyStrip {
    /// No key to remove.
    #[default]
    None,
    /// Drop the API's key header.
    Header,
    /// Send this query string (without `?`) instead of the client's.
    Query(Vec<u8>),
}

/// A request let in: where it goes and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted<'r> {
    /// The API and operation that matched, the prefix length and the captures.
    pub route: RouteMatch<'r>,
    /// Index of the subscription whose key the request carried, and whether it
    /// was the secondary key.
    pub subscription: Option<(usize, bool)>,
    /// Index of the product (the subscription's, or an open product).
    pub product: Option<usize>,
    /// How to keep the key from the backend.
    pub strip: KeyStrip,
    /// A CORS preflight (see [`preflight_route`]): only `cors` policies run.
    pub preflight: bool,
}

impl Admitted<'_> {
    /// Index of the API in the snapshot.
    pub fn api(&self) -> usize {
        self.route.api as usize
    }

    /// Index of the operation in its API.
    pub fn operation(&self) -> usize {
        self.route.operation as usize
    }
}

/// A request turned away, with the answer it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Status of the answer.
    pub status: u16,
    /// Who is at fault, as telemetry records it (`client`, `gateway`, `subscription`).
    pub source: &'static str,
    /// Machine-readable reason, as telemetry records it.
    pub reason: &'static str,
    /// The message of the answer's body, when it is not the status's default.
    pub message: Option<&'static str>,
    /// The connection must close after the answer: what follows the head cannot
    /// be trusted to be the next request.
    pub close: bool,
}

/// What [`admit`] decided.
// Boxing the admitted request would cost a heap allocation per request (as for
// `RouteOutcome`); the refusals are the rare, small case.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<'r> {
    /// Routed and let in.
    Admitted(Admitted<'r>),
    /// Refused before an API was chosen (no route, or an unroutable path).
    Unrouted(Refusal),
    /// Routed to an API that wants HTTPS (`httpsRedirect`): the same URL
    /// over HTTPS on this port.
    Redirect {
        /// Index of the API.
        api: usize,
        /// Index of the operation.
        operation: usize,
        /// The HTTPS listener's public port.
        port: u16,
    },
    /// Routed to this API and operation, then refused.
    Refused {
        /// Index of the API.
        api: usize,
        /// Index of the operation.
        operation: usize,
        /// The answer.
        refusal: Refusal,
    },
}

/// Routes `head` in `config` and checks body size, scheme and subscription, in
/// that order (the first failing check gives the answer).
pub fn admit<'r>(head: &'r RequestHead, config: &'r CompiledConfig, gate: Gate) -> Admission<'r> {
    let mut outcome = config.router().route_versioned(
        head.authority(),
        &head.method,
        head.path(),
        &HeadVersion(head),
    );
    let preflight = preflight_route(head, config, &mut outcome);
    let route = match outcome {
        RouteOutcome::Matched(m) => m,
        RouteOutcome::NotFound => return Admission::Unrouted(NOT_FOUND),
        RouteOutcome::BadPath => {
            return Admission::Unrouted(Refusal {
                status: 400,
                source: "client",
                reason: "InvalidPath",
                message: None,
                close: true,
            })
        }
    };
    let (api_idx, op_idx) = (route.api as usize, route.operation as usize);
    let refused = |refusal| Admission::Refused {
        api: api_idx,
        operation: op_idx,
        refusal,
    };
    if let (Some(max), BodyFraming::Length(n)) = (gate.max_body_bytes, head.framing) {
        if n > max {
            return refused(Refusal {
                status: 413,
                source: "client",
                reason: "RequestEntityTooLarge",
                message: None,
                close: true,
            });
        }
    }
    let api = config.api(api_idx);
    if let (Scheme::Http, true, Some(port)) = (gate.scheme, api.https_redirect, gate.https_port) {
        // Before the scheme check: an HTTPS-only API sends plain HTTP to
        // HTTPS instead of hiding behind a 404. Without a Host there is no
        // URL to send the client to.
        if api.allows(Scheme::Https) && head.authority().is_some() {
            return Admission::Redirect {
                api: api_idx,
                operation: op_idx,
                port,
            };
        }
    }
    if !api.allows(gate.scheme) {
        // An API not offered over this scheme does not exist on it, as in APIM.
        return refused(NOT_FOUND);
    }
    let mut admitted = Admitted {
        route,
        subscription: None,
        product: None,
        strip: KeyStrip::None,
        preflight,
    };
    if !api.subscription_required {
        return Admission::Admitted(admitted);
    }
    let names = &api.subscription_key_parameter_names;
    let found = find_key(head, names);
    if preflight {
        // A browser's preflight carries no key: it is let in without one. A valid
        // key (in the query) still selects its product's policies, as in APIM.
        if let Some(KeyCheck::Valid {
            subscription,
            product,
            secondary,
        }) = found.map(|(key, _)| config.check_key(api_idx, key))
        {
            admitted.subscription = Some((subscription, secondary));
            admitted.product = product;
        }
        return Admission::Admitted(admitted);
    }
    let denied = match found.map(|(key, _)| config.check_key(api_idx, key)) {
        None => match config.open_product(api_idx) {
            // An open product lets its APIs be called without a key.
            Some(p) => {
                admitted.product = Some(p);
                None
            }
            None => Some(("SubscriptionKeyNotFound", MISSING_KEY)),
        },
        Some(KeyCheck::Invalid) => Some(("SubscriptionKeyInvalid", INVALID_KEY)),
        Some(KeyCheck::Valid {
            subscription,
            product,
            secondary,
        }) => {
            admitted.subscription = Some((subscription, secondary));
            admitted.product = product;
            None
        }
    };
    if let Some((reason, message)) = denied {
        return refused(Refusal {
            status: 401,
            source: "subscription",
            reason,
            message: Some(message),
            close: false,
        });
    }
    if let Some((_, place)) = found {
        admitted.strip = match place {
            KeyPlace::Header => KeyStrip::Header,
            KeyPlace::Query => KeyStrip::Query(query_without(
                head.query().unwrap_or(b""),
                names.query.as_bytes(),
            )),
        };
    }
    Admission::Admitted(admitted)
}

/// Whether `head` is a CORS preflight the `cors` policy answers, routing it
/// (`outcome` is the route of its own method). APIM answers a preflight with the
/// `cors` policies alone unless the API has an operation for `OPTIONS` itself
/// (which then runs as any request): so a preflight is routed by the method it
/// asks about (`Access-Control-Request-Method`), finding the operation whose
/// policies apply, else by a wildcard operation; an API with neither stays 404.
pub fn preflight_route<'r>(
    head: &'r RequestHead,
    config: &'r CompiledConfig,
    outcome: &mut RouteOutcome<'r>,
) -> bool {
    if head.method != http::Method::OPTIONS || head.header("origin").is_none() {
        return false;
    }
    let Some(asked) = head.header("access-control-request-method") else {
        return false;
    };
    if let RouteOutcome::Matched(m) = outcome {
        let op = &config.api(m.api as usize).operations[m.operation as usize];
        if op.method.eq_ignore_ascii_case("OPTIONS") {
            return false;
        }
    }
    if let Ok(method) = http::Method::from_bytes(asked.trim_ascii()) {
        if let m @ RouteOutcome::Matched(_) = config.router().route_versioned(
            head.authority(),
            &method,
            head.path(),
            &HeadVersion(head),
        ) {
            *outcome = m;
            return true;
        }
    }
    matches!(outcome, RouteOutcome::Matched(_))
}

/// The request head as the router reads a version header or query parameter.
struct HeadVersion<'h>(&'h RequestHead);

impl VersionInput for HeadVersion<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(name)
    }
    fn query(&self) -> Option<&[u8]> {
        self.0.query()
    }
}

/// No API or operation here (also: an API not offered over this scheme).
pub(crate) const NOT_FOUND: Refusal = Refusal {
    status: 404,
    source: "gateway",
    reason: "NotFound",
    message: None,
    close: false,
};

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::config::Snapshot;
    use crate::http::Limits;

    const CONFIG: &str = r#"{
      "revision": 1,
      "apis": [
        {"id": "a", "path": "a", "serviceUrl": "http://backend.test:9000",
         "operations": [{"id": "any", "method": "*", "urlTemplate": "/{x}"}]},
        {"id": "b", "path": "b", "serviceUrl": "http://backend.test:9000",
         "subscriptionKeyParameterNames": {"header": "X-Key", "query": "key"},
         "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}]},
        {"id": "open", "path": "open", "serviceUrl": "http://backend.test:9000",
         "subscriptionRequired": false, "protocols": ["https"],
         "operations": [{"id": "get", "method": "GET", "urlTemplate": "/"}]},
        {"id": "moved", "path": "moved", "serviceUrl": "http://backend.test:9000",
         "subscriptionRequired": false, "protocols": ["http", "https"], "httpsRedirect": true,
         "operations": [{"id": "any", "method": "*", "urlTemplate": "/*"}]}
      ],
      "subscriptions": [
        {"id": "all", "scope": "/apis", "primaryKey": "0123456789abcdef-all-1", "secondaryKey": "0123456789abcdef-all-2"}
      ]
    }"#;

    fn config() -> CompiledConfig {
        let snapshot = Snapshot::from_json(CONFIG.as_bytes()).expect("parses");
        CompiledConfig::compile(snapshot).expect("compiles")
    }

    fn head(text: &str) -> RequestHead {
        let mut buf = BytesMut::from(text.as_bytes());
        RequestHead::parse(&mut buf, &Limits::default())
            .expect("valid")
            .expect("complete")
    }

    const HTTP: Gate = Gate {
        scheme: Scheme::Http,
        max_body_bytes: Some(100),
        https_port: None,
    };

    fn refusal(admission: &Admission<'_>) -> Option<(u16, &'static str)> {
        match admission {
            Admission::Admitted(_) => None,
            Admission::Redirect { .. } => Some((301, "Redirect")),
            Admission::Unrouted(r) | Admission::Refused { refusal: r, .. } => {
                Some((r.status, r.reason))
            }
        }
    }

    #[test]
    fn routes_and_keys() {
        let config = config();
        let h =
            head("GET /a/x?subscription-key=0123456789abcdef-all-1 HTTP/1.1\r\nHost: h\r\n\r\n");
        let Admission::Admitted(admitted) = admit(&h, &config, HTTP) else {
            panic!("refused");
        };
        assert_eq!((admitted.api(), admitted.operation()), (0, 0));
        assert_eq!(admitted.subscription, Some((0, false)));
        assert_eq!(admitted.route.params.len(), 1);
        assert_eq!(admitted.strip, KeyStrip::Query(Vec::new()));

        let h = head("GET /b/x HTTP/1.1\r\nHost: h\r\nX-Key: 0123456789abcdef-all-2\r\n\r\n");
        let Admission::Admitted(admitted) = admit(&h, &config, HTTP) else {
            panic!("refused");
        };
        assert_eq!(admitted.subscription, Some((0, true)));
        assert_eq!(admitted.strip, KeyStrip::Header);
    }

    #[test]
    fn refusals_in_order() {
        let config = config();
        let cases = [
            (
                "GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n",
                Some((404, "NotFound")),
            ),
            (
                "GET /a/%2e%2e/b HTTP/1.1\r\nHost: h\r\n\r\n",
                Some((400, "InvalidPath")),
            ),
            (
                "POST /a/x HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n",
                Some((413, "RequestEntityTooLarge")),
            ),
            (
                "GET /open/ HTTP/1.1\r\nHost: h\r\n\r\n",
                Some((404, "NotFound")),
            ),
            (
                "GET /a/x HTTP/1.1\r\nHost: h\r\n\r\n",
                Some((401, "SubscriptionKeyNotFound")),
            ),
            (
                "GET /a/x HTTP/1.1\r\nHost: h\r\nOcp-Apim-Subscription-Key: nope\r\n\r\n",
                Some((401, "SubscriptionKeyInvalid")),
            ),
        ];
        for (text, want) in cases {
            let h = head(text);
            assert_eq!(refusal(&admit(&h, &config, HTTP)), want, "{text}");
        }
        let https = Gate {
            scheme: Scheme::Https,
            max_body_bytes: None,
            https_port: None,
        };
        let h = head("GET /open/ HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(refusal(&admit(&h, &config, https)), None);
        // Routing comes first: a refused route is not an API's refusal.
        let h = head("GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(matches!(admit(&h, &config, HTTP), Admission::Unrouted(_)));
        let h = head("GET /open/ HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(matches!(
            admit(&h, &config, HTTP),
            Admission::Refused {
                api: 2,
                operation: 0,
                ..
            }
        ));
    }

    #[test]
    fn https_redirect_only_over_http_with_a_listener_and_a_host() {
        let config = config();
        let with_https = Gate {
            https_port: Some(8443),
            ..HTTP
        };
        let h = head("GET /moved/x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(matches!(
            admit(&h, &config, with_https),
            Admission::Redirect {
                api: 3,
                port: 8443,
                ..
            }
        ));
        // No HTTPS listener: served as `protocols` says (http is allowed).
        assert_eq!(refusal(&admit(&h, &config, HTTP)), None);
        // Over HTTPS: served.
        let over_https = Gate {
            scheme: Scheme::Https,
            ..with_https
        };
        assert_eq!(refusal(&admit(&h, &config, over_https)), None);
        // An API without the setting keeps APIM's 404.
        let h = head("GET /open/ HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            refusal(&admit(&h, &config, with_https)),
            Some((404, "NotFound"))
        );
        // HTTP/1.0 without Host: nowhere to send the client.
        let h = head("GET /moved/x HTTP/1.0\r\n\r\n");
        assert!(!matches!(
            admit(&h, &config, with_https),
            Admission::Redirect { .. }
        ));
    }
}
