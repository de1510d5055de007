//! `cors`: answers preflight requests and adds CORS headers to actual
//! cross-origin responses, following APIM and the Fetch standard.
//!
//! For the pipeline: on a preflight (`is_preflight`, admitted as one: no
//! operation defines `OPTIONS`), only `cors` runs: `preflight` gives
//! the whole response. On other requests, `actual` says which headers to add
//! to the final response, or that the request ends now with an empty 200.

// `Failure` carries the prepared response by value; it is the pipeline's type.

use super::attrs;
use super::context::{Context, Headers, Request, Response};
use super::error::{Failure, PolicyError};
use super::param::Param;
use super::xml::Element;

/// Which origins may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// `*`: any origin.
    Any,
    /// These origins, normalised (`scheme://host[:port]`, lower case, no default port).
    List(Vec<String>),
}

/// `<cors>`.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `Access-Control-Allow-Credentials: true` (default false).
    pub allow_credentials: Param<bool>,
    /// Answer unmatched requests with an empty 200 at once (default false).
    pub terminate_unmatched_request: Param<bool>,
    /// Allowed origins.
    pub origins: Origins,
    /// Allowed methods; `None` means APIM's default, GET and POST.
    pub methods: Option<Vec<Param<String>>>,
    /// `Access-Control-Max-Age` in seconds (0 = not sent).
    pub preflight_result_max_age: Param<u64>,
    /// Allowed request headers, lower case; `*` allows any.
    pub allowed_headers: Vec<String>,
    /// Headers the browser may expose to scripts.
    pub expose_headers: Vec<String>,
}

/// A preflight's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum PreflightOutcome {
    /// Allowed: send this 200 with the CORS headers.
    Allowed(Response),
    /// Not allowed by this policy. With `terminate`, send `response` (an empty
    /// 200 without CORS headers) now; without, try the next `cors` policy of
    /// the inbound section and send `response` if there is none.
    Unmatched {
        /// Whether to stop here.
        terminate: bool,
        /// The empty 200.
        response: Response,
    },
}

/// What to do with a request that is not a preflight.
#[derive(Debug, Clone, PartialEq)]
pub enum CorsOutcome {
    /// No `Origin` header: nothing to do.
    NotCors,
    /// Allowed: add these headers to the response.
    Headers(Vec<(String, String)>),
    /// Not allowed: continue, adding no CORS headers.
    Unmatched,
    /// Not allowed and `terminate-unmatched-request`: send this empty 200 now.
    Terminate(Response),
}

/// `scheme://host[:port]` in canonical form, or the trimmed text if it is not a URL
/// (e.g. the `null` origin).
pub fn normalize_origin(s: &str) -> String {
    let s = s.trim();
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    let authority = match default_port {
        Some(p) => authority.strip_suffix(p).unwrap_or(&authority).to_string(),
        None => authority,
    };
    format!("{scheme}://{authority}")
}

/// Whether `req` is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(req: &Request) -> bool {
    req.method.eq_ignore_ascii_case("OPTIONS")
        && req.headers.contains("Origin")
        && req.headers.contains("Access-Control-Request-Method")
}

fn header_list(el: &Element, outer: &str) -> Result<Vec<String>, PolicyError> {
    let mut out = Vec::new();
    for o in el.children_named(outer) {
        attrs::only(o, &[])?;
        attrs::only_children(o, &["header"])?;
        for h in o.children_named("header") {
            let name = h.text().trim().to_string();
            if name.is_empty() {
                return Err(PolicyError::at(h, "<header> must name a header"));
            }
            out.push(name);
        }
    }
    Ok(out)
}

fn empty_ok() -> Response {
    Response {
        status: 200,
        reason: "OK".into(),
        headers: Headers::new(),
        body: None,
    }
}

impl Cors {
    /// Compiles `<cors>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["allow-credentials", "terminate-unmatched-request"])?;
        attrs::only_children(
            el,
            &[
                "allowed-origins",
                "allowed-methods",
                "allowed-headers",
                "expose-headers",
            ],
        )?;
        let ao = el
            .child("allowed-origins")
            .ok_or_else(|| PolicyError::at(el, "<allowed-origins> is required"))?;
        attrs::only_children(ao, &["origin"])?;
        let mut list = Vec::new();
        let mut any = false;
        for o in ao.children_named("origin") {
            let v = o.text().trim().to_string();
            if v == "*" {
                any = true;
            } else if v.is_empty() {
                return Err(PolicyError::at(o, "<origin> must be * or a URI"));
            } else {
                list.push(normalize_origin(&v));
            }
        }
        let origins = match (any, list.is_empty()) {
            (true, true) => Origins::Any,
            (true, false) => {
                return Err(PolicyError::at(
                    ao,
                    "'*' must be the only <origin> when it is used",
                ))
            }
            (false, true) => return Err(PolicyError::at(ao, "at least one <origin> is required")),
            (false, false) => Origins::List(list),
        };
        let (methods, max_age) = match el.child("allowed-methods") {
            None => (None, Param::Lit(0)),
            Some(m) => {
                attrs::only(m, &["preflight-result-max-age"])?;
                attrs::only_children(m, &["method"])?;
                let methods: Vec<Param<String>> = m
                    .children_named("method")
                    .map(Param::text)
                    .collect::<Result<_, _>>()?;
                if methods.is_empty() {
                    return Err(PolicyError::at(m, "at least one <method> is required"));
                }
                (
                    Some(methods),
                    Param::attr_or(m, "preflight-result-max-age", 0)?,
                )
            }
        };
        Ok(Cors {
            allow_credentials: Param::attr_or(el, "allow-credentials", false)?,
            // APIM's attribute table gives false as the default.
            terminate_unmatched_request: Param::attr_or(el, "terminate-unmatched-request", false)?,
            origins,
            methods,
            preflight_result_max_age: max_age,
            allowed_headers: header_list(el, "allowed-headers")?
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose_headers: header_list(el, "expose-headers")?,
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        match &self.origins {
            Origins::Any => true,
            Origins::List(list) => {
                let o = normalize_origin(origin);
                list.contains(&o)
            }
        }
    }

    fn method_allowed(&self, method: &str, ctx: &Context) -> Result<bool, Failure> {
        let method = method.trim();
        match &self.methods {
            None => Ok(["GET", "POST"]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))),
            Some(list) => {
                for m in list {
                    let m = m.resolve(ctx)?;
                    let m = m.trim();
                    if m == "*" || m.eq_ignore_ascii_case(method) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    }

    fn headers_allowed(&self, requested: &[&str]) -> bool {
        if self.allowed_headers.iter().any(|h| h == "*") {
            return true;
        }
        requested.iter().all(|r| {
            self.allowed_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(r))
        })
    }

    /// The `Access-Control-Allow-Origin` and related headers for `origin`.
    fn origin_headers(&self, origin: &str, credentials: bool, out: &mut Vec<(String, String)>) {
        // With credentials the Fetch standard refuses `*`: echo the origin.
        if self.origins == Origins::Any && !credentials {
            out.push(("Access-Control-Allow-Origin".into(), "*".into()));
        } else {
            out.push(("Access-Control-Allow-Origin".into(), origin.trim().into()));
            out.push(("Vary".into(), "Origin".into()));
        }
        if credentials {
            out.push(("Access-Control-Allow-Credentials".into(), "true".into()));
        }
    }

    /// Answers a preflight request (see `is_preflight`).
    pub fn preflight(&self, ctx: &Context) -> Result<PreflightOutcome, Failure> {
        let h = &ctx.request.headers;
        let origin = h.get("Origin").unwrap_or("");
        let method = h.get("Access-Control-Request-Method").unwrap_or("");
        let requested: Vec<&str> = h
            .get_all("Access-Control-Request-Headers")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let matched = self.origin_allowed(origin)
            && !method.trim().is_empty()
            && self.method_allowed(method, ctx)?
            && self.headers_allowed(&requested);
        if !matched {
            return Ok(PreflightOutcome::Unmatched {
                terminate: self.terminate_unmatched_request.resolve(ctx)?,
                response: empty_ok(),
            });
        }
        let credentials = self.allow_credentials.resolve(ctx)?;
        let mut out = Vec::new();
        self.origin_headers(origin, credentials, &mut out);
        // Echo what was asked: `*` is literal for credentialed requests.
        out.push(("Access-Control-Allow-Methods".into(), method.trim().into()));
        if !requested.is_empty() {
            out.push(("Access-Control-Allow-Headers".into(), requested.join(",")));
        }
        let max_age = self.preflight_result_max_age.resolve(ctx)?;
        if max_age > 0 {
            out.push(("Access-Control-Max-Age".into(), max_age.to_string()));
        }
        let mut resp = empty_ok();
        for (n, v) in out {
            resp.headers.append(n, v);
        }
        Ok(PreflightOutcome::Allowed(resp))
    }

    /// Decides for a request that is not a preflight.
    pub fn actual(&self, ctx: &Context) -> Result<CorsOutcome, Failure> {
        let Some(origin) = ctx.request.headers.get("Origin") else {
            return Ok(CorsOutcome::NotCors);
        };
        if !self.origin_allowed(origin) {
            let simple = ["GET", "HEAD"]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(&ctx.request.method));
            if simple && self.terminate_unmatched_request.resolve(ctx)? {
                return Ok(CorsOutcome::Terminate(empty_ok()));
            }
            return Ok(CorsOutcome::Unmatched);
        }
        let credentials = self.allow_credentials.resolve(ctx)?;
        let mut out = Vec::new();
        self.origin_headers(origin, credentials, &mut out);
        if !self.expose_headers.is_empty() {
            out.push((
                "Access-Control-Expose-Headers".into(),
                self.expose_headers.join(","),
            ));
        }
        Ok(CorsOutcome::Headers(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    fn cors(src: &str) -> Cors {
        Cors::from_element(&xml::parse(src).expect("xml")).expect("compiles")
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> Context {
        let mut ctx = Context::default();
        ctx.request.method = method.into();
        for (n, v) in headers {
            ctx.request.headers.append(*n, *v);
        }
        ctx
    }

    const EXAMPLE: &str = r#"<cors allow-credentials="true">
        <allowed-origins>
            <origin>http://localhost:8080/</origin>
            <origin>https://Example.com:443</origin>
        </allowed-origins>
        <allowed-methods preflight-result-max-age="300">
            <method>GET</method><method>POST</method><method>PATCH</method><method>DELETE</method>
        </allowed-methods>
        <allowed-headers><header>x-zumo-auth</header><header>Content-Type</header></allowed-headers>
        <expose-headers><header>x-zumo-installation-id</header><header>x-request-id</header></expose-headers>
    </cors>"#;

    #[test]
    fn preflight_matched_with_credentials() {
        let c = cors(EXAMPLE);
        let ctx = req(
            "OPTIONS",
            &[
                ("Origin", "https://example.com"),
                ("Access-Control-Request-Method", "PATCH"),
                (
                    "Access-Control-Request-Headers",
                    "content-type, X-Zumo-Auth",
                ),
            ],
        );
        assert!(is_preflight(&ctx.request));
        let PreflightOutcome::Allowed(r) = c.preflight(&ctx).expect("ok") else {
            panic!("unmatched")
        };
        assert_eq!(r.status, 200);
        let h = &r.headers;
        assert_eq!(
            h.get("Access-Control-Allow-Origin"),
            Some("https://example.com")
        );
        assert_eq!(h.get("Access-Control-Allow-Credentials"), Some("true"));
        assert_eq!(h.get("Access-Control-Allow-Methods"), Some("PATCH"));
        assert_eq!(
            h.get("Access-Control-Allow-Headers"),
            Some("content-type,X-Zumo-Auth")
        );
        assert_eq!(h.get("Access-Control-Max-Age"), Some("300"));
        assert_eq!(h.get("Vary"), Some("Origin"));
        // Default port and trailing slash normalise away.
        let ctx = req(
            "OPTIONS",
            &[
                ("Origin", "http://localhost:8080"),
                ("Access-Control-Request-Method", "GET"),
            ],
        );
        assert!(matches!(
            c.preflight(&ctx),
            Ok(PreflightOutcome::Allowed(_))
        ));
    }

    #[test]
    fn preflight_unmatched() {
        let c = cors(EXAMPLE);
        for headers in [
            vec![
                ("Origin", "https://evil.example"),
                ("Access-Control-Request-Method", "GET"),
            ],
            vec![
                ("Origin", "https://example.com"),
                ("Access-Control-Request-Method", "PUT"),
            ],
            vec![
                ("Origin", "https://example.com"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "x-other"),
            ],
            vec![
                ("Origin", "http://example.com"),
                ("Access-Control-Request-Method", "GET"),
            ],
        ] {
            let ctx = req("OPTIONS", &headers);
            match c.preflight(&ctx).expect("ok") {
                PreflightOutcome::Unmatched {
                    terminate,
                    response,
                } => {
                    assert!(!terminate);
                    assert_eq!(response.status, 200);
                    assert!(response.headers.is_empty(), "no CORS headers");
                }
                o => panic!("{headers:?}: {o:?}"),
            }
        }
        let t = cors(
            r#"<cors terminate-unmatched-request="true"><allowed-origins><origin>https://a.example</origin></allowed-origins></cors>"#,
        );
        let ctx = req(
            "OPTIONS",
            &[
                ("Origin", "https://b.example"),
                ("Access-Control-Request-Method", "GET"),
            ],
        );
        assert!(matches!(
            t.preflight(&ctx),
            Ok(PreflightOutcome::Unmatched {
                terminate: true,
                ..
            })
        ));
        assert!(!is_preflight(
            &req("OPTIONS", &[("Origin", "https://b.example")]).request
        ));
    }

    #[test]
    fn wildcard_origin_without_and_with_credentials() {
        let open = cors(
            r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-methods><method>*</method></allowed-methods><allowed-headers><header>*</header></allowed-headers></cors>"#,
        );
        let ctx = req(
            "OPTIONS",
            &[
                ("Origin", "https://any.example"),
                ("Access-Control-Request-Method", "PUT"),
                ("Access-Control-Request-Headers", "x-a,x-b"),
            ],
        );
        let PreflightOutcome::Allowed(r) = open.preflight(&ctx).expect("ok") else {
            panic!()
        };
        assert_eq!(r.headers.get("Access-Control-Allow-Origin"), Some("*"));
        assert!(!r.headers.contains("Access-Control-Allow-Credentials"));
        assert!(!r.headers.contains("Vary"));
        let cred = cors(
            r#"<cors allow-credentials="true"><allowed-origins><origin>*</origin></allowed-origins></cors>"#,
        );
        let ctx = req("GET", &[("Origin", "https://any.example")]);
        let CorsOutcome::Headers(h) = cred.actual(&ctx).expect("ok") else {
            panic!()
        };
        assert!(h.contains(&(
            "Access-Control-Allow-Origin".into(),
            "https://any.example".into()
        )));
        assert!(h.contains(&("Vary".into(), "Origin".into())));
        assert!(h.contains(&("Access-Control-Allow-Credentials".into(), "true".into())));
        // Without allowed-methods, only GET and POST pass a preflight.
        let ctx = req(
            "OPTIONS",
            &[
                ("Origin", "https://x.example"),
                ("Access-Control-Request-Method", "DELETE"),
            ],
        );
        assert!(matches!(
            cred.preflight(&ctx),
            Ok(PreflightOutcome::Unmatched { .. })
        ));
    }

    #[test]
    fn actual_requests() {
        let c = cors(EXAMPLE);
        assert_eq!(c.actual(&req("GET", &[])), Ok(CorsOutcome::NotCors));
        let CorsOutcome::Headers(h) = c
            .actual(&req("POST", &[("Origin", "https://example.com")]))
            .expect("ok")
        else {
            panic!()
        };
        assert!(h.contains(&(
            "Access-Control-Expose-Headers".into(),
            "x-zumo-installation-id,x-request-id".into()
        )));
        assert_eq!(
            c.actual(&req("GET", &[("Origin", "https://evil.example")])),
            Ok(CorsOutcome::Unmatched)
        );
        let t = cors(
            r#"<cors terminate-unmatched-request="true"><allowed-origins><origin>https://a.example</origin></allowed-origins></cors>"#,
        );
        assert!(matches!(
            t.actual(&req("GET", &[("Origin", "https://b.example")])),
            Ok(CorsOutcome::Terminate(_))
        ));
        assert_eq!(
            t.actual(&req("POST", &[("Origin", "https://b.example")])),
            Ok(CorsOutcome::Unmatched)
        );
    }

    #[test]
    fn bad_configs() {
        for bad in [
            r#"<cors/>"#,
            r#"<cors><allowed-origins/></cors>"#,
            r#"<cors><allowed-origins><origin>*</origin><origin>https://a</origin></allowed-origins></cors>"#,
            r#"<cors allow-credentials="yes"><allowed-origins><origin>*</origin></allowed-origins></cors>"#,
            r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-methods/></cors>"#,
            r#"<cors><allowed-origins><origin>*</origin></allowed-origins><allowed-headers><header/></allowed-headers></cors>"#,
        ] {
            assert!(
                Cors::from_element(&xml::parse(bad).expect("xml")).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            normalize_origin("HTTPS://A.Example:443/path"),
            "https://a.example"
        );
        assert_eq!(normalize_origin("http://a:8080"), "http://a:8080");
        assert_eq!(normalize_origin("null"), "null");
    }
}
