use http::Method;

use super::*;
/// An API as the router sees it.
struct TestApi {
    id: String,
    path: String,
    hostnames: Vec<String>,
    operations: Vec<TestOp>,
}

struct TestOp {
    id: String,
    method: String,
    url_template: String,
}

impl ApiSource for TestApi {
    type Operation = TestOp;

    fn id(&self) -> &str {
        &self.id
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn hostnames(&self) -> &[String] {
        &self.hostnames
    }

    fn operations(&self) -> &[TestOp] {
        &self.operations
    }
}

impl OperationSource for TestOp {
    fn id(&self) -> &str {
        &self.id
    }

    fn method(&self) -> &str {
        &self.method
    }

    fn url_template(&self) -> &str {
        &self.url_template
    }
}

fn api(id: &str, path: &str, hostnames: &[&str], ops: &[(&str, &str)]) -> TestApi {
    TestApi {
        id: id.to_owned(),
        path: path.to_owned(),
        hostnames: hostnames.iter().map(|h| (*h).to_owned()).collect(),
        operations: ops
            .iter()
            .enumerate()
            .map(|(i, (method, template))| TestOp {
                id: format!("op{i}"),
                method: (*method).to_owned(),
                url_template: (*template).to_owned(),
            })
            .collect(),
    }
}

fn router(apis: &[TestApi]) -> Router {
    match Router::new(apis) {
        Ok(r) => r,
        Err(e) => panic!("router: {e}"),
    }
}

/// (api, operation, prefix_len) of a match, or panics with the outcome.
fn hit(r: &Router, host: Option<&str>, method: Method, path: &str) -> (u32, u32, usize) {
    match r.route(host.map(str::as_bytes), &method, path.as_bytes()) {
        RouteOutcome::Matched(m) => (m.api, m.operation, m.api_prefix_len),
        other => panic!("{method} {path}: {other:?}"),
    }
}

fn outcome<'r>(r: &'r Router, method: Method, path: &str) -> RouteOutcome<'r> {
    r.route(None, &method, path.as_bytes())
}

const ALL: &[(&str, &str)] = &[("*", "/*")];

#[test]
fn prefix_on_segment_boundaries() {
    let r = router(&[api("users", "users", &[], ALL)]);
    assert_eq!(hit(&r, None, Method::GET, "/users"), (0, 0, 6));
    assert_eq!(hit(&r, None, Method::GET, "/users/"), (0, 0, 6));
    assert_eq!(hit(&r, None, Method::GET, "/users/42"), (0, 0, 6));
    assert_eq!(outcome(&r, Method::GET, "/usersX"), RouteOutcome::NotFound);
    assert_eq!(outcome(&r, Method::GET, "/user"), RouteOutcome::NotFound);
    assert_eq!(outcome(&r, Method::GET, "/"), RouteOutcome::NotFound);
    // API paths are case-sensitive, like the literal segments of templates.
    assert_eq!(outcome(&r, Method::GET, "/Users"), RouteOutcome::NotFound);
}

#[test]
fn api_path_slashes_are_normalized() {
    let r = router(&[api("a", "/v1/orders/", &[], ALL)]);
    assert_eq!(hit(&r, None, Method::GET, "/v1/orders/7"), (0, 0, 10));
    assert_eq!(outcome(&r, Method::GET, "/v1"), RouteOutcome::NotFound);
}

#[test]
fn longest_prefix_wins() {
    let r = router(&[
        api("v1", "v1", &[], ALL),
        api("v1-users", "v1/users", &[], ALL),
        api("deep", "v1/users/admin/tools", &[], ALL),
    ]);
    assert_eq!(hit(&r, None, Method::GET, "/v1/orders"), (0, 0, 3));
    assert_eq!(hit(&r, None, Method::GET, "/v1/users/1"), (1, 0, 9));
    assert_eq!(hit(&r, None, Method::GET, "/v1/users/admin"), (1, 0, 9));
    assert_eq!(
        hit(&r, None, Method::GET, "/v1/users/admin/tools/x"),
        (2, 0, 21)
    );
    assert_eq!(hit(&r, None, Method::GET, "/v1/usersx"), (0, 0, 3));
}

#[test]
fn chosen_api_is_final_even_without_operation() {
    // The longer prefix wins even if only the shorter one has a matching operation.
    let r = router(&[
        api("v1", "v1", &[], ALL),
        api("v1-users", "v1/users", &[], &[("GET", "/{id}")]),
    ]);
    assert_eq!(
        outcome(&r, Method::DELETE, "/v1/users/1"),
        RouteOutcome::NotFound
    );
    assert_eq!(hit(&r, None, Method::GET, "/v1/users/1"), (1, 0, 9));
}

#[test]
fn root_api_matches_what_nothing_longer_does() {
    let r = router(&[api("root", "", &[], ALL), api("users", "users", &[], ALL)]);
    assert_eq!(hit(&r, None, Method::GET, "/"), (0, 0, 0));
    assert_eq!(hit(&r, None, Method::GET, "/anything/else"), (0, 0, 0));
    assert_eq!(hit(&r, None, Method::GET, "/usersX"), (0, 0, 0));
    assert_eq!(hit(&r, None, Method::GET, "/users/1"), (1, 0, 6));
    let r = router(&[api("slash", "/", &[], &[("GET", "/")])]);
    assert_eq!(hit(&r, None, Method::GET, "/"), (0, 0, 0));
}

#[test]
fn host_specific_apis_first() {
    let r = router(&[
        api("any", "orders", &[], ALL),
        api("contoso", "orders", &["api.contoso.com", "[::1]"], ALL),
        api("contoso-root", "", &["root.contoso.com"], ALL),
        api("any-v2", "orders/v2", &[], ALL),
    ]);
    assert_eq!(
        hit(&r, Some("api.contoso.com"), Method::GET, "/orders/1"),
        (1, 0, 7)
    );
    assert_eq!(
        hit(&r, Some("API.Contoso.COM:8080"), Method::GET, "/orders"),
        (1, 0, 7)
    );
    assert_eq!(
        hit(&r, Some("api.contoso.com."), Method::GET, "/orders"),
        (1, 0, 7)
    );
    assert_eq!(
        hit(&r, Some("[::1]:8080"), Method::GET, "/orders"),
        (1, 0, 7)
    );
    // A host-specific match wins over a longer prefix among the any-host APIs.
    assert_eq!(
        hit(&r, Some("api.contoso.com"), Method::GET, "/orders/v2"),
        (1, 0, 7)
    );
    // Other hosts, no host, or no host-specific prefix: fall back to any-host APIs.
    assert_eq!(
        hit(&r, Some("other.com"), Method::GET, "/orders"),
        (0, 0, 7)
    );
    assert_eq!(hit(&r, None, Method::GET, "/orders/v2/x"), (3, 0, 10));
    let bad = r.route(Some(b"api.contoso.com"), &Method::GET, b"/orders/../x");
    assert_eq!(bad, RouteOutcome::BadPath);
    assert_eq!(outcome(&r, Method::GET, "/nothing"), RouteOutcome::NotFound);
    assert_eq!(
        hit(&r, Some("root.contoso.com"), Method::GET, "/orders"),
        (2, 0, 0)
    );
    // Hosts longer than the stack buffer never match host-specific APIs.
    let long = format!("{}.com", "a".repeat(300));
    assert_eq!(hit(&r, Some(&long), Method::GET, "/orders"), (0, 0, 7));
}

#[test]
fn params_are_captured() {
    let r = router(&[api(
        "shop",
        "shop",
        &[],
        &[
            ("GET", "/users/{userId}/orders/{orderId}"),
            ("GET", "/search?q={q}"),
        ],
    )]);
    let path = "/shop/users/u%201/orders/77";
    let RouteOutcome::Matched(m) = r.route(None, &Method::GET, path.as_bytes()) else {
        panic!("no match");
    };
    assert_eq!((m.api, m.operation, m.api_prefix_len), (0, 0, 5));
    let names: Vec<_> = m.params.iter().map(|c| c.name).collect();
    assert_eq!(names, ["userId", "orderId"]);
    assert_eq!(m.param(path.as_bytes(), "userId"), Some(&b"u%201"[..]));
    assert_eq!(m.param(path.as_bytes(), "orderId"), Some(&b"77"[..]));
    assert_eq!(m.param(path.as_bytes(), "nope"), None);
    assert!(!m.params.spilled());
    assert_eq!(hit(&r, None, Method::GET, "/shop/search"), (0, 1, 5));
    // A parameter never matches an empty segment.
    assert_eq!(
        outcome(&r, Method::GET, "/shop/users//orders/1"),
        RouteOutcome::NotFound
    );
}

#[test]
fn eight_params_stay_inline() {
    let t = "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}";
    let r = router(&[api("p", "p", &[], &[("GET", t)])]);
    let RouteOutcome::Matched(m) = r.route(None, &Method::GET, b"/p/1/2/3/4/5/6/7/8") else {
        panic!("no match");
    };
    assert_eq!(m.params.len(), 8);
    assert!(!m.params.spilled());
    assert_eq!(m.param(b"/p/1/2/3/4/5/6/7/8", "h"), Some(&b"8"[..]));
}

#[test]
fn literal_beats_param_beats_wildcard() {
    let r = router(&[api(
        "u",
        "u",
        &[],
        &[
            ("GET", "/users/{id}"),
            ("GET", "/users/me"),
            ("GET", "/users/*"),
            ("GET", "/users/{id}/orders"),
            ("GET", "/users/me/{tab}"),
        ],
    )]);
    assert_eq!(hit(&r, None, Method::GET, "/u/users/me").1, 1);
    assert_eq!(hit(&r, None, Method::GET, "/u/users/42").1, 0);
    assert_eq!(hit(&r, None, Method::GET, "/u/users/42/x").1, 2);
    assert_eq!(hit(&r, None, Method::GET, "/u/users").1, 2);
    assert_eq!(hit(&r, None, Method::GET, "/u/users/").1, 2);
    // Backtracking: the literal branch `me` has no `orders` child, the param branch has.
    assert_eq!(hit(&r, None, Method::GET, "/u/users/me/orders").1, 4);
    assert_eq!(hit(&r, None, Method::GET, "/u/users/you/orders").1, 3);
    let RouteOutcome::Matched(m) = r.route(None, &Method::GET, b"/u/users/me/orders") else {
        panic!("no match");
    };
    assert_eq!(m.params[0].name, "tab");
    assert_eq!((m.params[0].start, m.params[0].end), (12, 18));
}

#[test]
fn backtracking_drops_captures_of_failed_branches() {
    let r = router(&[api(
        "b",
        "b",
        &[],
        &[
            ("GET", "/{a}/lit/{b}/x"),
            ("GET", "/{c}/{d}/{e}/y"),
            ("GET", "/lit/*"),
        ],
    )]);
    // `{a}/lit/{b}` captures "2" and then fails on "y"; that capture must go.
    let RouteOutcome::Matched(m) = r.route(None, &Method::GET, b"/b/1/lit/2/y") else {
        panic!("no match");
    };
    assert_eq!(m.operation, 1);
    let caps: Vec<_> = m.params.iter().map(|c| (c.name, c.start, c.end)).collect();
    assert_eq!(caps, [("c", 3, 4), ("d", 5, 8), ("e", 9, 10)]);
    // Literal first: `/lit/*` wins over `/{c}/{d}/{e}/y` at the first segment.
    assert_eq!(hit(&r, None, Method::GET, "/b/lit/two/3/y").1, 2);
}

#[test]
fn wildcard_matches_any_rest() {
    let r = router(&[api("w", "w", &[], &[("GET", "/files/*"), ("*", "/*")])]);
    assert_eq!(hit(&r, None, Method::GET, "/w/files"), (0, 0, 2));
    assert_eq!(hit(&r, None, Method::GET, "/w/files/"), (0, 0, 2));
    assert_eq!(hit(&r, None, Method::GET, "/w/files/a/b/c.txt"), (0, 0, 2));
    assert_eq!(hit(&r, None, Method::GET, "/w/filesx"), (0, 1, 2));
    assert_eq!(hit(&r, None, Method::POST, "/w/files/a"), (0, 1, 2));
    assert_eq!(hit(&r, None, Method::GET, "/w"), (0, 1, 2));
    assert_eq!(hit(&r, None, Method::GET, "/w/"), (0, 1, 2));
    assert_eq!(hit(&r, None, Method::GET, "/w//x"), (0, 1, 2));
}

#[test]
fn methods() {
    let r = router(&[api(
        "m",
        "m",
        &[],
        &[
            ("GET", "/items"),
            ("*", "/items"),
            ("DELETE", "/items/{id}"),
            ("GET", "/only-get"),
            ("PURGE", "/cache"),
        ],
    )]);
    assert_eq!(hit(&r, None, Method::GET, "/m/items").1, 0);
    assert_eq!(hit(&r, None, Method::POST, "/m/items").1, 1);
    assert_eq!(hit(&r, None, Method::DELETE, "/m/items/3").1, 2);
    assert_eq!(
        outcome(&r, Method::GET, "/m/items/3"),
        RouteOutcome::NotFound
    );
    assert_eq!(
        outcome(&r, Method::POST, "/m/only-get"),
        RouteOutcome::NotFound
    );
    let purge = Method::from_bytes(b"PURGE").unwrap();
    assert_eq!(hit(&r, None, purge, "/m/cache").1, 4);
}

#[test]
fn method_picks_a_less_specific_template_that_accepts_it() {
    let r = router(&[api(
        "m",
        "m",
        &[],
        &[("GET", "/users/me"), ("DELETE", "/users/{id}")],
    )]);
    assert_eq!(hit(&r, None, Method::DELETE, "/m/users/me").1, 1);
    assert_eq!(
        outcome(&r, Method::PUT, "/m/users/me"),
        RouteOutcome::NotFound
    );
}

#[test]
fn escaped_unreserved_characters_match_their_literal() {
    // A backend decodes `%61dmin` to `admin`: routing must pick the same operation.
    let r = router(&[api(
        "u",
        "users",
        &[],
        &[("GET", "/admin"), ("GET", "/{name}"), ("GET", "/caf%C3%A9")],
    )]);
    assert_eq!(hit(&r, None, Method::GET, "/%75sers/%61dmin"), (0, 0, 8));
    assert_eq!(hit(&r, None, Method::GET, "/users/%61%64%6D%69%6E").1, 0);
    assert_eq!(hit(&r, None, Method::GET, "/users/caf%c3%a9").1, 2);
    assert_eq!(hit(&r, None, Method::GET, "/users/%41dmin").1, 1);
    let long = format!("/users/{}", "%61".repeat(300));
    assert_eq!(hit(&r, None, Method::GET, &long).1, 1);
}

#[test]
fn trailing_slash_is_ignored_once() {
    let r = router(&[api(
        "t",
        "t",
        &[],
        &[("GET", "/users/{id}"), ("GET", "/list/")],
    )]);
    assert_eq!(hit(&r, None, Method::GET, "/t/users/1/").1, 0);
    assert_eq!(hit(&r, None, Method::GET, "/t/list").1, 1);
    assert_eq!(hit(&r, None, Method::GET, "/t/list/").1, 1);
    assert_eq!(
        outcome(&r, Method::GET, "/t/list//"),
        RouteOutcome::NotFound
    );
    assert_eq!(
        outcome(&r, Method::GET, "/t/users/"),
        RouteOutcome::NotFound
    );
}

#[test]
fn empty_remainder_is_root_template() {
    let r = router(&[api("r", "r", &[], &[("GET", "/")])]);
    assert_eq!(hit(&r, None, Method::GET, "/r"), (0, 0, 2));
    assert_eq!(hit(&r, None, Method::GET, "/r/"), (0, 0, 2));
    assert_eq!(outcome(&r, Method::GET, "/r/x"), RouteOutcome::NotFound);
}

#[test]
fn bad_paths() {
    let r = router(&[api("root", "", &[], ALL)]);
    for bad in [
        "",
        "users",
        "*",
        "/public/../admin",
        "/public/./admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/a/..",
        "/a/..;/b",
        "/public%2fadmin",
        "/public%2Fadmin",
        "/public\\..\\admin",
    ] {
        assert_eq!(
            outcome(&r, Method::GET, bad),
            RouteOutcome::BadPath,
            "{bad}"
        );
    }
    assert_eq!(hit(&r, None, Method::GET, "/a/...b/c..").0, 0);
}

#[test]
fn build_errors_name_the_culprit() {
    let err = |apis: &[TestApi]| match Router::new(apis) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    let e = err(&[api("a", "x", &[], ALL), api("b", "/x/", &[], ALL)]);
    assert_eq!(
        e,
        "api `b`: path `/x` on any host is already used by api `a`"
    );
    let e = err(&[
        api("a", "x", &["h.com"], ALL),
        api("b", "x", &["H.com"], ALL),
    ]);
    assert_eq!(
        e,
        "api `b`: path `/x` on host `h.com` is already used by api `a`"
    );
    // Same path on different hosts, or host-specific and any, is fine.
    router(&[
        api("a", "x", &["h.com"], ALL),
        api("b", "x", &["g.com"], ALL),
        api("c", "x", &[], ALL),
    ]);
    for (path, why) in [
        ("a?b", "'?'"),
        ("a#b", "'#'"),
        ("a/{id}", "'{'"),
        ("a b", "whitespace"),
        ("a//b", "empty segment"),
        ("a/../b", "'..'"),
        ("a%2Fb", "'%2F'"),
    ] {
        let e = err(&[api("p", path, &[], ALL)]);
        assert!(
            e.starts_with("api `p`: invalid path") && e.contains(why),
            "{path}: {e}"
        );
    }
    let e = err(&[api("h", "x", &["h.com:80"], ALL)]);
    assert!(e.contains("invalid hostname `h.com:80`"), "{e}");

    let e = err(&[api("o", "o", &[], &[("GET", "/{a}"), ("GET", "/{b}")])]);
    assert_eq!(
        e,
        "api `o`, operation `op1`: same method and URL template as operation `op0`"
    );
    // Same shape with another method, or `*` next to a method, is fine.
    router(&[api(
        "o",
        "o",
        &[],
        &[
            ("GET", "/{a}"),
            ("POST", "/{b}"),
            ("*", "/{c}"),
            ("GET", "/{a}/*"),
        ],
    )]);
    let e = err(&[api("o", "o", &[], &[("*", "/x"), ("*", "/x/")])]);
    assert!(e.contains("same method"), "{e}");

    for (method, why) in [
        ("get", "uppercase"),
        ("", "token"),
        ("GE T", "token"),
        ("G/T", "token"),
    ] {
        let e = err(&[api("o", "o", &[], &[(method, "/")])]);
        assert!(
            e.contains("invalid method") && e.contains(why),
            "{method}: {e}"
        );
    }
    let e = err(&[api("o", "o", &[], &[("GET", "/users/{id}.json")])]);
    assert_eq!(
        e,
        "api `o`, operation `op0`: invalid urlTemplate `/users/{id}.json`: \
         parameter `{id}.json` must be a whole segment like `{name}`"
    );
}

#[test]
fn ten_thousand_apis() {
    let ops: &[(&str, &str)] = &[
        ("GET", "/items"),
        ("GET", "/items/{id}"),
        ("POST", "/items"),
        ("DELETE", "/items/{id}"),
        ("GET", "/items/{id}/history/*"),
    ];
    let mut apis = Vec::new();
    for i in 0..10_000 {
        let path = match i % 3 {
            0 => format!("svc{i}"),
            1 => format!("team{}/svc{i}", i % 50),
            _ => format!("team{}/svc{i}/v{}", i % 50, i % 4),
        };
        let hosts: &[&str] = if i % 7 == 0 {
            &["tenant.example.com"]
        } else {
            &[]
        };
        apis.push(api(&format!("api{i}"), &path, hosts, ops));
    }
    let r = router(&apis);
    for (i, a) in apis.iter().enumerate() {
        let prefix = format!("/{}", a.path);
        let host = a.hostnames.first().map(String::as_str);
        let path = format!("{prefix}/items/{i}");
        let RouteOutcome::Matched(m) =
            r.route(host.map(str::as_bytes), &Method::GET, path.as_bytes())
        else {
            panic!("{path}: no match");
        };
        assert_eq!(m.api as usize, i, "{path}");
        assert_eq!(m.operation, 1, "{path}");
        assert_eq!(m.api_prefix_len, prefix.len(), "{path}");
        assert_eq!(
            m.param(path.as_bytes(), "id"),
            Some(i.to_string().as_bytes())
        );
    }
    // Host-specific APIs are not reachable from other hosts.
    assert_eq!(
        outcome(&r, Method::GET, "/svc0/items"),
        RouteOutcome::NotFound
    );
    assert_eq!(
        outcome(&r, Method::GET, "/svc10001/items"),
        RouteOutcome::NotFound
    );
    assert_eq!(
        outcome(&r, Method::GET, "/svc3/nothing"),
        RouteOutcome::NotFound
    );
}
