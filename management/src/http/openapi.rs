//! The OpenAPI 3.0 document of the management API, served at `/openapi.json`.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::problem::PROBLEM_JSON;
use crate::store::Kind;

mod store;
mod tls;
mod versions;

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| serde_json::to_vec_pretty(&document()).unwrap_or_default());
    let mut response = bytes.clone().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for kind in Kind::ROUTED {
        let (collection, item) = entity_paths(kind);
        paths.insert(format!("/{}", kind.collection()), collection);
        paths.insert(format!("/{}/{{id}}", kind.collection()), item);
    }
    for (path, item) in action_paths()
        .into_iter()
        .chain(policy_paths())
        .chain(api_doc_paths())
        .chain(sync_paths())
        .chain(analytics_paths())
        .chain(misc_paths())
        .chain(tls::hostname_paths())
        .chain(versions::revision_paths())
    {
        paths.insert(path, item);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Portcullis management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The only way to change a Portcullis configuration. Every accepted change is compiled with the gateway's own compiler first, bumps one revision and is recorded in the audit log. Errors are application/problem+json.",
        },
        "security": [{ "adminToken": [] }, { "adminSession": [] }],
        "paths": paths,
        "components": components(),
    })
}

/// The schema name and the body it describes of each kind.
fn schema_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Api => "Api",
        Kind::Product => "Product",
        Kind::Subscription => "Subscription",
        Kind::User => "User",
        Kind::Backend => "Backend",
        Kind::NamedValue => "NamedValue",
        Kind::Fragment => "PolicyFragment",
        Kind::Gateway => "Gateway",
        Kind::Certificate => "Certificate",
        Kind::CaCertificate => "CaCertificate",
        Kind::Hostname => "Hostname",
        Kind::VersionSet => "ApiVersionSet",
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { PROBLEM_JSON: { "schema": schema_ref("Problem") } },
    })
}

fn ok_json(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": json_content(schema) })
}

fn with_etag(mut response: Value) -> Value {
    response["headers"] = json!({ "ETag": { "$ref": "#/components/headers/ETag" } });
    response
}

fn param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn header_param(reference: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{reference}") })
}

/// Responses shared by every admin operation.
fn admin_errors(responses: &mut Map<String, Value>) {
    responses.insert(
        "401".into(),
        problem("No or a wrong admin bearer token (or admin console session)"),
    );
    responses.insert(
        "403".into(),
        problem("An admin console session's unsafe request without its X-CSRF-Token"),
    );
}

fn operation(
    summary: &str,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(&str, Value)>,
) -> Value {
    let mut map: Map<String, Value> = responses
        .into_iter()
        .map(|(code, r)| (code.to_owned(), r))
        .collect();
    admin_errors(&mut map);
    let mut op = json!({ "summary": summary, "responses": map });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn entity_paths(kind: Kind) -> (Value, Value) {
    let noun = kind.noun();
    let schema = schema_name(kind);
    let id = param(
        "id",
        if kind == Kind::NamedValue {
            "The named value's name"
        } else {
            "The id: letters, digits, '-', '.', '_' or '~'"
        },
    );
    let collection = json!({
        "get": operation(
            &format!("List {}", kind.collection()),
            vec![header_param("top"), header_param("skip")],
            None,
            vec![
                ("200", ok_json("One page, ordered by id", page_schema(schema_ref(schema)))),
                ("400", problem("A bad top or skip")),
            ],
        ),
    });
    let item = json!({
        "get": operation(
            &format!("Get a {noun}"),
            vec![id.clone(), header_param("IfNoneMatch")],
            None,
            vec![
                ("200", with_etag(ok_json(&format!("The {noun}"), schema_ref(schema)))),
                ("304", with_etag(json!({ "description": "Not modified since the given ETag" }))),
                ("404", problem("No such entity")),
            ],
        ),
        "put": operation(
            &format!("Create or replace a {noun}"),
            vec![id.clone(), header_param("IfMatch"), header_param("IfNoneMatch")],
            Some(json!({ "required": true, "content": json_content(schema_ref(schema)) })),
            vec![
                ("200", with_etag(ok_json("Replaced", schema_ref(schema)))),
                ("201", with_etag(ok_json("Created (a subscription's keys and a secret value are shown this once)", schema_ref(schema)))),
                ("400", problem("Not valid, or the resulting configuration does not compile (nothing is stored)")),
                ("412", problem("If-Match or If-None-Match does not hold")),
                ("413", problem("Body over 16 MiB")),
            ],
        ),
        "delete": operation(
            &format!("Delete a {noun}"),
            vec![id, header_param("IfMatch")],
            None,
            vec![
                ("204", json!({ "description": "Deleted" })),
                ("404", problem("No such entity")),
                ("409", problem("Still referenced: an API in a product, a product a subscription is scoped to, a backend, fragment or named value a policy or fragment names (the detail names each referrer, element and line), a certificate a hostname or a backend's tls uses, a CA certificate a backend trusts, ...")),
                ("412", problem("If-Match does not hold")),
            ],
        ),
    });
    (collection, item)
}

fn action(summary: &str, params: Vec<Value>, body: Option<Value>, ok: Value) -> Value {
    json!({
        "post": operation(
            summary,
            params,
            body,
            vec![
                ("200", ok),
                ("400", problem("Bad request body")),
                ("404", problem("No such entity")),
                ("412", problem("If-Match does not hold")),
            ],
        ),
    })
}

fn action_paths() -> Vec<(String, Value)> {
    let sub = || param("id", "The subscription's id");
    let gw = || param("id", "The gateway's id");
    let keys = || ok_json("Both keys", schema_ref("SubscriptionKeys"));
    let mut out = vec![(
        "/subscriptions/{id}/secrets".to_owned(),
        action("Show a subscription's keys", vec![sub()], None, keys()),
    )];
    for which in ["primary", "secondary"] {
        out.push((
            format!("/subscriptions/{{id}}/regenerate-{which}-key"),
            action(
                &format!("Replace the {which} key with a new random one"),
                vec![sub(), header_param("IfMatch")],
                None,
                keys(),
            ),
        ));
    }
    for (verb, state) in [
        ("suspend", "suspended"),
        ("activate", "active"),
        ("cancel", "cancelled"),
    ] {
        out.push((
            format!("/subscriptions/{{id}}/{verb}"),
            action(
                &format!("Set the subscription's state to {state}"),
                vec![sub(), header_param("IfMatch")],
                None,
                with_etag(ok_json("The subscription", schema_ref("Subscription"))),
            ),
        ));
    }
    let gateway_keys = || ok_json("Both keys", schema_ref("GatewayKeys"));
    out.push((
        "/gateways/{id}/keys".to_owned(),
        action("Show a gateway's keys", vec![gw()], None, gateway_keys()),
    ));
    out.push((
        "/gateways/{id}/regenerate-key".to_owned(),
        action(
            "Replace one of a gateway's keys; tokens signed with the old one stop working",
            vec![gw(), header_param("IfMatch")],
            Some(
                json!({ "required": true, "content": json_content(schema_ref("KeyTypeRequest")) }),
            ),
            gateway_keys(),
        ),
    ));
    out.push((
        "/gateways/{id}/token".to_owned(),
        action(
            "Sign a gateway token (at most 30 days; default 30 days, primary key)",
            vec![gw()],
            Some(json!({ "required": false, "content": json_content(schema_ref("TokenRequest")) })),
            ok_json("The token", schema_ref("Token")),
        ),
    ));
    out.push((
        "/gateways/{id}/status".to_owned(),
        json!({
            "get": operation(
                "A gateway's instances: last heartbeat, applied revision, online (offline after 3 missed heartbeats)",
                vec![gw()],
                None,
                vec![
                    ("200", ok_json("The instances", schema_ref("GatewayStatus"))),
                    ("404", problem("No such gateway")),
                ],
            ),
        }),
    ));
    out
}

fn policy_paths() -> Vec<(String, Value)> {
    let scopes = [
        ("/policy", "the global policy document (all APIs)", vec![]),
        (
            "/products/{id}/policy",
            "a product's policy document",
            vec![param("id", "The product's id")],
        ),
        (
            "/apis/{id}/policy",
            "an API's policy document",
            vec![param("id", "The API's id")],
        ),
        (
            "/apis/{id}/operations/{opId}/policy",
            "an operation's policy document",
            vec![
                param("id", "The API's id"),
                param("opId", "The operation's id"),
            ],
        ),
    ];
    let xml = || json!({ "application/xml": { "schema": { "type": "string" } } });
    scopes
        .into_iter()
        .flat_map(|(path, what, params)| {
            let with = |extra: &str| {
                let mut p = params.clone();
                p.push(header_param(extra));
                p
            };
            let item = json!({
                "get": operation(
                    &format!("Get {what}"),
                    with("IfNoneMatch"),
                    None,
                    vec![
                        ("200", with_etag(json!({ "description": "The XML document", "content": xml() }))),
                        ("304", with_etag(json!({ "description": "Not modified since the given ETag" }))),
                        ("404", problem("No document (or no owner)")),
                    ],
                ),
                "put": operation(
                    &format!("Set {what}"),
                    with("IfMatch"),
                    Some(json!({ "required": true, "content": xml() })),
                    vec![
                        ("200", with_etag(json!({ "description": "Replaced", "content": xml() }))),
                        ("201", with_etag(json!({ "description": "Created", "content": xml() }))),
                        ("400", problem("The document does not compile: `policy` names the element, line, column and reason; nothing is stored")),
                        ("404", problem("No such owner")),
                        ("412", problem("If-Match does not hold")),
                        ("415", problem("Not XML")),
                    ],
                ),
                "delete": operation(
                    &format!("Remove {what}"),
                    with("IfMatch"),
                    None,
                    vec![
                        ("204", json!({ "description": "Removed" })),
                        ("404", problem("No document (or no owner)")),
                        ("412", problem("If-Match does not hold")),
                    ],
                ),
            });
            let validate = json!({
                "post": operation(
                    &format!("Check {what} without saving it"),
                    params.clone(),
                    Some(json!({ "required": true, "content": xml() })),
                    vec![
                        ("200", ok_json("Whether it compiles exactly as PUT would compile it (with the current named values and fragments), and if not, the compiler's errors with their lines; nothing is stored", schema_ref("PolicyValidation"))),
                        ("404", problem("No such owner")),
                        ("415", problem("Not XML")),
                    ],
                ),
            });
            [(path.to_owned(), item), (format!("{path}/validate"), validate)]
        })
        .collect()
}

fn api_doc_paths() -> Vec<(String, Value)> {
    let id = || param("id", "The API's id");
    let document_types = || {
        let any = json!({ "type": "object", "description": "An OpenAPI 3.0/3.1 or Swagger 2.0 document" });
        json!({
            "application/json": { "schema": any },
            "application/yaml": { "schema": { "type": "string" } },
            "application/x-yaml": { "schema": { "type": "string" } },
            "text/yaml": { "schema": { "type": "string" } },
        })
    };
    let import_responses = || {
        vec![
            ("200", with_etag(ok_json("The API, its operations replaced", schema_ref("Api")))),
            ("201", with_etag(ok_json("The API, created", schema_ref("Api")))),
            ("400", problem("The document cannot be imported (`document` gives line and column of a syntax error, or the JSON pointer of a structural one), a `path` or `serviceUrl` is missing, or the API does not compile")),
            ("412", problem("If-Match does not hold")),
        ]
    };
    let query = |name: &str, description: &str| json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "string" } });
    let mut put_responses = import_responses();
    put_responses.push(("415", problem("Neither JSON nor YAML")));
    let mut url_responses = import_responses();
    url_responses.push(("502", problem("Fetching the document failed (connection, TLS, status other than 2xx, too large, timeout)")));
    vec![
        (
            "/apis/{id}/openapi".to_owned(),
            json!({
                "get": operation(
                    "Export an API as an OpenAPI 3 document: the imported document with the current operations, or one generated from them",
                    vec![id(), query("format", "`json` (default) or `yaml`")],
                    None,
                    vec![
                        ("200", json!({ "description": "The OpenAPI document", "content": {
                            "application/json": { "schema": { "type": "object" } },
                            "application/yaml": { "schema": { "type": "string" } },
                        } })),
                        ("400", problem("Unknown format")),
                        ("404", problem("No such API")),
                    ],
                ),
                "put": operation(
                    "Create or update an API from an OpenAPI document (operations replaced, policies and settings kept)",
                    vec![
                        id(),
                        query("path", "The API URL suffix; required when the API does not exist"),
                        query("serviceUrl", "The upstream base URL; default the document's first absolute server URL (new APIs) or the API's current upstream"),
                        query("apiVersionSetId", "Make the API a version of this version set"),
                        query("apiVersion", "Its version identifier in the set"),
                        query("newRevision", "`true`: import into a new revision of the API (a copy of its current revision, id `<api>~rev<N>`), not into the API"),
                        header_param("IfMatch"),
                    ],
                    Some(json!({ "required": true, "content": document_types() })),
                    put_responses,
                ),
            }),
        ),
        (
            "/apis/{id}/openapi/import-url".to_owned(),
            json!({
                "post": operation(
                    "Create or update an API from an OpenAPI document fetched from an http(s) URL",
                    vec![id(), header_param("IfMatch")],
                    Some(json!({ "required": true, "content": json_content(json!({
                        "type": "object",
                        "required": ["url"],
                        "additionalProperties": false,
                        "properties": {
                            "url": { "type": "string", "description": "http or https URL of the document (15 s, 16 MiB, 5 redirects at most); its host must resolve to public addresses only, unless the management plane runs with --openapi-fetch-private" },
                            "path": { "type": "string", "description": "The API URL suffix; required when the API does not exist" },
                            "serviceUrl": { "type": "string", "description": "The upstream base URL" },
                            "apiVersionSetId": { "type": "string", "description": "Make the API a version of this version set" },
                            "apiVersion": { "type": "string", "description": "Its version identifier in the set" },
                            "newRevision": { "type": "boolean", "default": false, "description": "Import into a new revision of the API, not into the API" },
                        },
                    })) })),
                    url_responses,
                ),
            }),
        ),
    ]
}

fn sync_paths() -> Vec<(String, Value)> {
    let gw = param("id", "The gateway's id");
    let gateway_errors = |mut responses: Map<String, Value>| {
        responses.insert(
            "401".into(),
            problem("No, a malformed, expired or forged gateway token, or one for another gateway (checked before any of a request body is read)"),
        );
        responses.insert("404".into(), problem("No such gateway"));
        Value::Object(responses)
    };
    let mut config_responses = Map::new();
    config_responses.insert(
        "200".into(),
        with_etag(ok_json(
            "The snapshot of exactly what this gateway serves; `revision` is the ETag",
            schema_ref("Snapshot"),
        )),
    );
    config_responses.insert(
        "304".into(),
        with_etag(json!({ "description": "The given revision is still current (after waiting, with `wait`)" })),
    );
    let mut heartbeat_responses = Map::new();
    heartbeat_responses.insert("204".into(), json!({ "description": "Recorded" }));
    heartbeat_responses.insert("400".into(), problem("Not a heartbeat"));
    heartbeat_responses.insert(
        "413".into(),
        problem("Body over 64 KiB (the token is checked first; a declared Content-Length over it is refused before the body is read)"),
    );
    let mut renew_responses = Map::new();
    renew_responses.insert(
        "200".into(),
        ok_json(
            "A fresh token for 30 days, signed with the key that signed the presented one",
            schema_ref("Token"),
        ),
    );
    vec![
        (
            "/gateways/{id}/token/renew".to_owned(),
            json!({
                "post": {
                    "summary": "Trade the gateway's current, still valid token for a fresh one (gateways do this on their own when a third of the token's lifetime, at most 7 days, remains)",
                    "security": [{ "gatewayToken": [] }],
                    "parameters": [gw.clone()],
                    "requestBody": { "required": false, "content": json_content(json!({ "type": "object" })) },
                    "responses": gateway_errors(renew_responses),
                },
            }),
        ),
        (
            "/gateways/{id}/configuration".to_owned(),
            json!({
                "get": {
                    "summary": "Fetch (or long-poll for) the gateway's configuration",
                    "security": [{ "gatewayToken": [] }],
                    "parameters": [
                        gw.clone(),
                        header_param("IfNoneMatch"),
                        { "name": "wait", "in": "query", "required": false, "description": "Hold the request up to this many seconds (capped at 60) until the revision differs from If-None-Match", "schema": { "type": "integer", "minimum": 0 } },
                    ],
                    "responses": gateway_errors(config_responses),
                },
            }),
        ),
        (
            "/gateways/{id}/heartbeat".to_owned(),
            json!({
                "post": {
                    "summary": "Report a gateway instance's state (every 60 s)",
                    "security": [{ "gatewayToken": [] }],
                    "parameters": [gw],
                    "requestBody": { "required": true, "content": json_content(schema_ref("Heartbeat")) },
                    "responses": gateway_errors(heartbeat_responses),
                },
            }),
        ),
    ]
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn analytics_paths() -> Vec<(String, Value)> {
    let string = json!({ "type": "string" });
    let time = |name: &str, default: &str| {
        query_param(
            name,
            &format!("RFC 3339 date-time (use `Z` or percent-encode `+`) or Unix milliseconds; default {default}"),
            string.clone(),
        )
    };
    let filters = || {
        [
            (
                "api",
                "Only this API's requests (empty: requests that matched no API)",
            ),
            ("operation", "Only this operation id's requests"),
            ("product", "Only requests let through by this product"),
            ("subscription", "Only this subscription's requests"),
            ("gateway", "Only this gateway's requests"),
        ]
        .into_iter()
        .map(|(name, what)| query_param(name, what, string.clone()))
    };
    let mut summary_params = vec![
        time("from", "`to` minus one hour"),
        time("to", "now"),
        query_param(
            "bucket",
            "Bucket width in seconds; buckets start at multiples of it since the Unix epoch; at most 10,000 buckets per range",
            json!({ "type": "integer", "minimum": 1, "default": 60 }),
        ),
        query_param(
            "groupBy",
            "One series per API, operation (`<api>/<operation>`), product, subscription or gateway; absent: one series of all",
            json!({ "type": "string", "enum": ["api", "operation", "product", "subscription", "gateway"] }),
        ),
    ];
    summary_params.extend(filters());
    let mut record_params = vec![
        time("from", "the oldest kept record"),
        time("to", "now"),
        header_param("top"),
        query_param(
            "limit",
            "Same as `top`",
            json!({ "type": "integer", "minimum": 0 }),
        ),
        header_param("skip"),
    ];
    record_params.extend(filters());
    let mut upload_responses = Map::new();
    upload_responses.insert(
        "200".into(),
        ok_json(
            "Stored, or already stored (a retry): `duplicate` is true and nothing was stored again",
            schema_ref("TelemetryAck"),
        ),
    );
    upload_responses.insert(
        "400".into(),
        problem("Not a telemetry batch: the detail says why"),
    );
    upload_responses.insert(
        "401".into(),
        problem("No, a malformed, expired or forged gateway token, or one for another gateway (checked before any of the body is read)"),
    );
    upload_responses.insert("404".into(), problem("No such gateway"));
    upload_responses.insert(
        "413".into(),
        problem("Body over 4 MiB (the token is checked first; a declared Content-Length over it is refused before the body is read)"),
    );
    upload_responses.insert("415".into(), problem("Not JSON"));
    vec![
        (
            "/gateways/{id}/telemetry".to_owned(),
            json!({
                "post": {
                    "summary": "Upload a batch of request records; a batch id already stored for this gateway is acknowledged and not stored again. Records are stored with this gateway's id, whatever they say",
                    "security": [{ "gatewayToken": [] }],
                    "parameters": [param("id", "The gateway's id")],
                    "requestBody": { "required": true, "content": json_content(schema_ref("TelemetryBatch")) },
                    "responses": Value::Object(upload_responses),
                },
            }),
        ),
        (
            "/analytics/requests".to_owned(),
            json!({
                "get": operation(
                    "Requests per group and time bucket: counts, errors, bytes and exact latency percentiles (nearest rank, weighted by each record's weight)",
                    summary_params,
                    None,
                    vec![
                        ("200", ok_json("The series", schema_ref("RequestAnalytics"))),
                        ("400", problem("A bad parameter (named in the detail), too many buckets or too many records")),
                    ],
                ),
            }),
        ),
        (
            "/analytics/records".to_owned(),
            json!({
                "get": operation(
                    "Raw request records, newest first",
                    record_params,
                    None,
                    vec![
                        ("200", ok_json("One page; `nextLink` keeps the range and filters", page_schema(schema_ref("RequestRecord")))),
                        ("400", problem("A bad parameter, named in the detail")),
                    ],
                ),
            }),
        ),
    ]
}

fn misc_paths() -> Vec<(String, Value)> {
    vec![
        (
            "/revision".to_owned(),
            json!({
                "get": operation(
                    "The current revision",
                    vec![],
                    None,
                    vec![("200", ok_json("The revision", json!({ "type": "object", "required": ["revision"], "properties": { "revision": { "type": "integer", "format": "int64" } } })))],
                ),
            }),
        ),
        (
            "/audit".to_owned(),
            json!({
                "get": operation(
                    "The audit log, newest first",
                    vec![header_param("top"), header_param("skip")],
                    None,
                    vec![
                        ("200", ok_json("One page", page_schema(schema_ref("AuditEntry")))),
                        ("400", problem("A bad top or skip")),
                    ],
                ),
            }),
        ),
        (
            "/openapi.json".to_owned(),
            json!({
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": { "200": { "description": "The OpenAPI document", "content": { "application/json": { "schema": { "type": "object" } } } } },
                },
            }),
        ),
        (
            "/healthz".to_owned(),
            json!({
                "get": {
                    "summary": "Liveness",
                    "security": [],
                    "responses": { "200": ok_json("Serving", json!({ "type": "object", "properties": { "status": { "type": "string", "enum": ["ok"] } } })) },
                },
            }),
        ),
    ]
}

fn page_schema(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["value", "count"],
        "properties": {
            "value": { "type": "array", "items": item },
            "count": { "type": "integer", "description": "How many there are in all" },
            "nextLink": { "type": "string", "description": "The next page's path and query, when more follow" },
        },
    })
}

fn components() -> Value {
    json!({
        "securitySchemes": {
            "adminToken": { "type": "http", "scheme": "bearer", "description": "The admin token printed at the first start (or given in the environment)" },
            "adminSession": { "type": "apiKey", "in": "cookie", "name": "portcullis_admin", "description": "The admin console's session (after POST /admin/login); unsafe methods also need the header X-CSRF-Token with the session's token" },
            "gatewayToken": { "type": "apiKey", "in": "header", "name": "Authorization", "description": "`GatewayKey <id>&<expiry>&<signature>` from POST /gateways/{id}/token" },
        },
        "headers": {
            "ETag": { "description": "The version (revision of the last write), quoted", "schema": { "type": "string", "example": "\"12\"" } },
        },
        "parameters": {
            "top": { "name": "top", "in": "query", "required": false, "description": "Page size (default 100, at most 1000)", "schema": { "type": "integer", "minimum": 0, "maximum": 1000, "default": 100 } },
            "skip": { "name": "skip", "in": "query", "required": false, "description": "How many to skip", "schema": { "type": "integer", "minimum": 0, "default": 0 } },
            "IfMatch": { "name": "If-Match", "in": "header", "required": false, "description": "`\"<version>\"` or `*`; 412 when it does not hold", "schema": { "type": "string" } },
            "IfNoneMatch": { "name": "If-None-Match", "in": "header", "required": false, "description": "On PUT, `*`: create only (412 if it exists). On GET, `\"<version>\"`: 304 while unchanged", "schema": { "type": "string" } },
        },
        "schemas": schemas(),
    })
}

fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let policy =
        json!({ "type": "string", "nullable": true, "description": "Policy XML (<policies>...)" });
    let mut schemas = Map::new();
    schemas.insert(
        "PolicyValidation".into(),
        json!({
            "type": "object",
            "required": ["valid"],
            "properties": {
                "valid": { "type": "boolean" },
                "errors": {
                    "type": "array",
                    "description": "When not valid: where and why (the compiler stops at the first error)",
                    "items": {
                        "type": "object",
                        "required": ["message"],
                        "properties": {
                            "line": { "type": "integer", "description": "From 1" },
                            "column": { "type": "integer", "description": "From 1" },
                            "element": { "type": "string", "description": "The offending element, or `policies`" },
                            "owner": { "type": "string", "description": "Whose document the error is in" },
                            "message": { "type": "string" },
                        },
                    },
                },
            },
        }),
    );
    schemas.insert(
        "Problem".into(),
        json!({
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": { "type": "string", "description": "https://portcullis.dev/problems/<slug>" },
                    "title": string,
                    "status": { "type": "integer" },
                    "detail": string,
                    "policy": {
                        "type": "object",
                        "description": "For a policy that does not compile",
                        "required": ["owner", "element", "line", "column", "reason"],
                        "properties": {
                            "owner": { "type": "string", "example": "api 'echo'" },
                            "element": { "type": "string", "example": "rate-limit" },
                            "line": { "type": "integer" },
                            "column": { "type": "integer" },
                            "reason": string,
                        },
                    },
                    "document": {
                        "type": "object",
                        "description": "For an OpenAPI document that cannot be imported: line and column of a syntax error, or the JSON pointer of a structural one",
                        "required": ["reason"],
                        "properties": {
                            "line": { "type": "integer" },
                            "column": { "type": "integer" },
                            "pointer": { "type": "string", "example": "/paths/~1users/get/responses" },
                            "reason": string,
                        },
                    },
                },
            }),
    );
    schemas.insert(
        "Api".into(),
        json!({
                "type": "object",
                "required": ["path"],
                "properties": {
                    "id": string,
                    "displayName": string,
                    "type": { "type": "string", "enum": ["http", "websocket"], "default": "http", "description": "websocket: a ws:// or wss:// backend and one operation, onHandshake (GET /, created when none is given), whose policies run on the opening handshake; then frames are relayed both ways" },
                    "description": string,
                    "path": { "type": "string", "description": "URL suffix, \"\" for the root API" },
                    "serviceUrl": { "type": "string", "nullable": true },
                    "backendId": { "type": "string", "nullable": true },
                    "protocols": { "type": "array", "items": { "type": "string", "enum": ["http", "https"] } },
                    "httpsRedirect": { "type": "boolean", "default": false, "description": "Answer plain HTTP with a redirect to the same URL over HTTPS (301 for GET and HEAD, 308 otherwise) when protocols has https and the gateway has an HTTPS listener" },
                    "hostnames": strings,
                    "subscriptionRequired": { "type": "boolean", "default": true },
                    "subscriptionKeyParameterNames": { "type": "object", "properties": { "header": string, "query": string } },
                    "preserveHostHeader": { "type": "boolean", "default": true },
                    "timeoutSeconds": { "type": "integer", "minimum": 1, "maximum": 3600, "default": 30 },
                    "operations": { "type": "array", "items": schema_ref("Operation") },
                    "policy": policy,
                    "telemetry": {
                        "type": "object",
                        "description": "Request records of this API (metrics count every request)",
                        "properties": {
                            "enabled": { "type": "boolean", "default": true },
                            "samplingPercentage": { "type": "integer", "minimum": 0, "maximum": 100, "default": 100 },
                        },
                    },
                },
            }),
    );
    schemas.insert(
        "Operation".into(),
        json!({
            "type": "object",
            "required": ["id", "method", "urlTemplate"],
            "properties": {
                "id": string,
                "displayName": string,
                "description": string,
                "method": { "type": "string", "description": "HTTP method, or * for any" },
                "urlTemplate": { "type": "string", "example": "/users/{id}" },
                "policy": policy,
            },
        }),
    );
    schemas.insert(
        "Product".into(),
        json!({
            "type": "object",
            "properties": {
                "id": string,
                "displayName": string,
                "description": string,
                "apis": strings,
                "subscriptionRequired": { "type": "boolean", "default": true },
                "approvalRequired": { "type": "boolean", "default": false, "description": "New subscriptions wait in state submitted until an administrator activates them" },
                "policy": policy,
            },
        }),
    );
    schemas.insert(
        "Subscription".into(),
        json!({
                "type": "object",
                "required": ["scope"],
                "properties": {
                    "id": string,
                    "displayName": string,
                    "scope": { "type": "string", "description": "/apis, /apis/{apiId} or /products/{productId}" },
                    "ownerId": string,
                    "state": { "type": "string", "enum": ["active", "submitted", "suspended", "cancelled", "expired", "rejected"] },
                    "primaryKey": { "type": "string", "description": "Generated when absent; shown only in the create response" },
                    "secondaryKey": { "type": "string", "description": "Generated when absent; shown only in the create response" },
                },
            }),
    );
    schemas.insert(
        "SubscriptionKeys".into(),
        json!({
            "type": "object",
            "required": ["primaryKey", "secondaryKey"],
            "properties": { "primaryKey": string, "secondaryKey": string },
        }),
    );
    schemas.insert(
        "User".into(),
        json!({
            "type": "object",
            "required": ["email", "firstName", "lastName"],
            "properties": {
                "id": string,
                "email": string,
                "firstName": string,
                "lastName": string,
                "state": { "type": "string", "enum": ["active", "blocked"] },
                "note": string,
            },
        }),
    );
    schemas.insert(
        "Backend".into(),
        json!({
            "type": "object",
            "required": ["url"],
            "properties": { "id": string, "description": string, "url": string, "tls": schema_ref("BackendTls") },
        }),
    );
    schemas.insert(
        "NamedValue".into(),
        json!({
                "type": "object",
                "properties": {
                    "name": string,
                    "value": { "type": "string", "nullable": true, "description": "null in every response after creation when secret; leave out on PUT to keep the stored value" },
                    "secret": { "type": "boolean", "default": false },
                },
            }),
    );
    schemas.insert(
        "PolicyFragment".into(),
        json!({
            "type": "object",
            "required": ["value"],
            "properties": {
                "id": string,
                "description": string,
                "value": { "type": "string", "description": "<fragment>...</fragment>" },
            },
        }),
    );
    schemas.insert(
        "Gateway".into(),
        json!({
                "type": "object",
                "required": ["location"],
                "properties": {
                    "id": string,
                    "description": string,
                    "location": {
                        "type": "object",
                        "required": ["name"],
                        "properties": { "name": string, "city": string, "district": string, "countryOrRegion": string },
                    },
                    "apis": { "type": "array", "items": { "type": "string" }, "description": "Ids of the APIs the gateway serves" },
                    "url": { "type": "string", "format": "uri", "example": "http://127.0.0.1:8080", "description": "Where API consumers reach this gateway (absolute http or https URL); the developer portal's try-it console sends requests there" },
                    "store": schema_ref("StoreSettings"),
                },
            }),
    );
    schemas.insert(
        "GatewayKeys".into(),
        json!({
            "type": "object",
            "required": ["primary", "secondary"],
            "properties": { "primary": string, "secondary": string },
        }),
    );
    schemas.insert(
        "KeyTypeRequest".into(),
        json!({
            "type": "object",
            "required": ["keyType"],
            "properties": { "keyType": { "type": "string", "enum": ["primary", "secondary"] } },
        }),
    );
    schemas.insert(
        "TokenRequest".into(),
        json!({
                "type": "object",
                "properties": {
                    "keyType": { "type": "string", "enum": ["primary", "secondary"], "default": "primary" },
                    "expiry": { "type": "string", "format": "date-time", "description": "At most 30 days ahead; default 30 days" },
                },
            }),
    );
    schemas.insert(
        "Token".into(),
        json!({
                "type": "object",
                "required": ["value", "expiry"],
                "properties": {
                    "value": { "type": "string", "example": "GatewayKey gw1&1767225600&base64signature" },
                    "expiry": { "type": "string", "format": "date-time" },
                },
            }),
    );
    schemas.insert(
        "Heartbeat".into(),
        json!({
                "type": "object",
                "required": ["instanceId"],
                "properties": {
                    "instanceId": string,
                    "hostname": string,
                    "version": string,
                    "appliedRevision": { "type": "integer", "nullable": true },
                    "uptimeSeconds": { "type": "integer" },
                    "health": { "type": "string", "enum": ["healthy", "degraded", "notReady"] },
                    "connectivity": { "type": "string", "enum": ["connected", "disconnected", "starting"] },
                    "compileErrors": strings,
                    "backup": { "type": "string", "description": "none, saved, loaded or error: ..." },
                    "tokenExpiry": { "type": "integer", "description": "When the instance's gateway token expires, Unix seconds" },
                    "stateStore": schema_ref("StateStoreHealth"),
                },
            }),
    );
    schemas.insert(
        "GatewayStatus".into(),
        json!({
            "type": "object",
            "required": ["gatewayId", "instances"],
            "properties": {
                "gatewayId": string,
                "instances": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            schema_ref("Heartbeat"),
                            {
                                "type": "object",
                                "properties": {
                                    "lastHeartbeat": { "type": "string", "format": "date-time" },
                                    "online": { "type": "boolean", "description": "False after three missed heartbeats, or once the instance's token has expired" },
                                    "tokenExpiresAt": { "type": "string", "format": "date-time", "description": "The instance's token expiry, when it reports one" },
                                    "tokenExpired": { "type": "boolean", "description": "The token has expired: the instance is shown degraded and disconnected, whatever its last heartbeat said" },
                                },
                            },
                        ],
                    },
                },
                "lastTokenRefusal": {
                    "type": "object",
                    "nullable": true,
                    "description": "The last refusal of a token sent for this gateway (since the management plane started)",
                    "properties": {
                        "reason": { "type": "string", "description": "expired, bad signature, key regenerated (signed with a key regenerated since this management plane started), unknown gateway, token for another gateway, no token, malformed token" },
                        "detail": string,
                        "at": { "type": "string", "format": "date-time" },
                        "count": { "type": "integer" },
                    },
                },
            },
        }),
    );
    schemas.insert(
        "Snapshot".into(),
        json!({
                "type": "object",
                "required": ["revision"],
                "description": "What one gateway serves (secret values included: only the gateway's token reads it)",
                "properties": {
                    "revision": { "type": "integer", "format": "int64" },
                    "apis": { "type": "array", "items": schema_ref("Api") },
                    "backends": { "type": "array", "items": schema_ref("Backend") },
                    "namedValues": { "type": "array", "items": schema_ref("NamedValue") },
                    "subscriptions": { "type": "array", "items": schema_ref("Subscription") },
                    "products": { "type": "array", "items": schema_ref("Product") },
                    "policy": policy,
                    "fragments": { "type": "array", "items": { "type": "object", "properties": { "id": string, "policy": string } } },
                    "certificates": { "type": "array", "description": "The certificates this gateway uses, private keys in the clear", "items": { "type": "object", "properties": { "id": string, "certificatePem": string, "privateKeyPem": string } } },
                    "caCertificates": { "type": "array", "items": { "type": "object", "properties": { "id": string, "certificatePem": string, "crlPem": string } } },
                    "hostnames": { "type": "array", "items": schema_ref("Hostname") },
                    "store": { "allOf": [schema_ref("StoreSettings")], "description": "This gateway's store setting, password in the clear" },
                },
            }),
    );
    schemas.insert(
        "AuditEntry".into(),
        json!({
            "type": "object",
            "required": ["revision", "at", "actor", "action", "resource"],
            "properties": {
                "revision": { "type": "integer", "format": "int64" },
                "at": { "type": "string", "format": "date-time" },
                "actor": string,
                "action": string,
                "resource": string,
                "detail": string,
            },
        }),
    );
    analytics_schemas(&mut schemas);
    tls::tls_schemas(&mut schemas);
    versions::version_schemas(&mut schemas);
    store::store_schemas(&mut schemas);
    Value::Object(schemas)
}

fn analytics_schemas(schemas: &mut Map<String, Value>) {
    let string = json!({ "type": "string" });
    let integer = json!({ "type": "integer", "format": "int64", "minimum": 0 });
    schemas.insert(
        "RequestRecord".into(),
        json!({
            "type": "object",
            "required": ["timestampMs", "requestId", "gateway", "instance", "method", "path", "status", "clientIp", "bytesIn", "bytesOut", "totalUs", "backendUs", "gatewayUs"],
            "properties": {
                "timestampMs": { "type": "integer", "format": "int64", "description": "Unix milliseconds when the request head arrived" },
                "requestId": string,
                "gateway": { "type": "string", "description": "Ignored on upload: the authenticated gateway's id is stored" },
                "instance": string,
                "api": { "type": "string", "description": "Absent when no API matched" },
                "operation": string,
                "product": string,
                "subscription": { "type": "string", "description": "The subscription's id, never its key" },
                "method": string,
                "path": string,
                "status": { "type": "integer", "description": "0 when the connection closed before a response" },
                "clientIp": string,
                "bytesIn": integer,
                "bytesOut": integer,
                "totalUs": integer,
                "backendUs": integer,
                "gatewayUs": integer,
                "cache": { "type": "string", "enum": ["hit", "miss"] },
                "error": { "type": "object", "required": ["source", "reason"], "properties": { "source": string, "reason": string } },
                "weight": { "type": "integer", "minimum": 1, "default": 1, "description": "How many requests the record stands for (sampling)" },
            },
        }),
    );
    schemas.insert(
        "TelemetryBatch".into(),
        json!({
            "type": "object",
            "required": ["id", "instance", "records"],
            "properties": {
                "id": { "type": "string", "minLength": 1, "maxLength": 200, "description": "Unique per batch of this gateway: the key of idempotent retries" },
                "instance": string,
                "dropped": { "type": "integer", "minimum": 0, "default": 0, "description": "Records dropped (buffer full) since the previous batch" },
                "records": { "type": "array", "maxItems": 1000, "items": schema_ref("RequestRecord") },
            },
        }),
    );
    schemas.insert(
        "TelemetryAck".into(),
        json!({
            "type": "object",
            "required": ["stored", "duplicate"],
            "properties": {
                "stored": { "type": "boolean" },
                "duplicate": { "type": "boolean" },
                "records": { "type": "integer", "description": "Records stored" },
                "expired": { "type": "integer", "description": "Records older than the retention, not stored" },
            },
        }),
    );
    let percentiles = json!({
        "type": "object",
        "required": ["p50", "p95", "p99"],
        "description": "Milliseconds; exact nearest-rank percentiles over the bucket's records, weighted by weight",
        "properties": { "p50": { "type": "number" }, "p95": { "type": "number" }, "p99": { "type": "number" } },
    });
    schemas.insert(
        "RequestAnalytics".into(),
        json!({
            "type": "object",
            "required": ["from", "to", "bucketSeconds", "groupBy", "dropped", "groups"],
            "properties": {
                "from": { "type": "string", "format": "date-time" },
                "to": { "type": "string", "format": "date-time", "description": "Exclusive" },
                "bucketSeconds": { "type": "integer" },
                "groupBy": { "type": "string", "nullable": true },
                "dropped": { "type": "integer", "description": "Records gateways dropped (buffer full), from batches received in the range; only the gateway filter applies" },
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["key", "buckets"],
                        "properties": {
                            "key": { "type": "string", "nullable": true, "description": "null: no product/subscription, or no groupBy" },
                            "buckets": {
                                "type": "array",
                                "description": "Buckets with requests, oldest first (empty ones are left out)",
                                "items": {
                                    "type": "object",
                                    "required": ["start", "requests", "errors", "clientErrors", "bytesIn", "bytesOut", "totalMs", "backendMs", "gatewayMs"],
                                    "properties": {
                                        "start": { "type": "string", "format": "date-time" },
                                        "requests": { "type": "integer", "description": "Sum of the records' weights" },
                                        "errors": { "type": "integer", "description": "Status 5xx or 0 (no response)" },
                                        "clientErrors": { "type": "integer", "description": "Status 4xx" },
                                        "bytesIn": { "type": "integer" },
                                        "bytesOut": { "type": "integer" },
                                        "totalMs": percentiles,
                                        "backendMs": percentiles,
                                        "gatewayMs": percentiles,
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }),
    );
}

/// Every path the router serves, with its methods: what `document` must describe.
pub const ROUTED: &[(&str, &[&str])] = &[
    ("/openapi.json", &["get"]),
    ("/healthz", &["get"]),
    ("/revision", &["get"]),
    ("/audit", &["get"]),
    ("/policy", &["get", "put", "delete"]),
    ("/products/{id}/policy", &["get", "put", "delete"]),
    ("/apis/{id}/policy", &["get", "put", "delete"]),
    (
        "/apis/{id}/operations/{opId}/policy",
        &["get", "put", "delete"],
    ),
    ("/policy/validate", &["post"]),
    ("/products/{id}/policy/validate", &["post"]),
    ("/apis/{id}/policy/validate", &["post"]),
    ("/apis/{id}/operations/{opId}/policy/validate", &["post"]),
    ("/apis/{id}/openapi", &["get", "put"]),
    ("/apis/{id}/openapi/import-url", &["post"]),
    ("/apis/{id}/revisions", &["get", "post"]),
    ("/apis/{id}/revisions/{rev}", &["delete"]),
    ("/apis/{id}/revisions/{rev}/make-current", &["post"]),
    ("/subscriptions/{id}/secrets", &["post"]),
    ("/subscriptions/{id}/regenerate-primary-key", &["post"]),
    ("/subscriptions/{id}/regenerate-secondary-key", &["post"]),
    ("/subscriptions/{id}/suspend", &["post"]),
    ("/subscriptions/{id}/activate", &["post"]),
    ("/subscriptions/{id}/cancel", &["post"]),
    ("/gateways/{id}/keys", &["post"]),
    ("/gateways/{id}/regenerate-key", &["post"]),
    ("/gateways/{id}/token", &["post"]),
    ("/gateways/{id}/token/renew", &["post"]),
    ("/gateways/{id}/status", &["get"]),
    ("/gateways/{id}/hostnames", &["get"]),
    (
        "/gateways/{id}/hostnames/{hostname}",
        &["get", "put", "delete"],
    ),
    ("/gateways/{id}/configuration", &["get"]),
    ("/gateways/{id}/heartbeat", &["post"]),
    ("/gateways/{id}/telemetry", &["post"]),
    ("/analytics/requests", &["get"]),
    ("/analytics/records", &["get"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_routed_path_and_method_is_documented() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut expected: Vec<(String, Vec<&str>)> = ROUTED
            .iter()
            .map(|(p, m)| ((*p).to_owned(), m.to_vec()))
            .collect();
        for kind in Kind::ROUTED {
            expected.push((format!("/{}", kind.collection()), vec!["get"]));
            expected.push((
                format!("/{}/{{id}}", kind.collection()),
                vec!["get", "put", "delete"],
            ));
        }
        for (path, methods) in &expected {
            let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
            for m in methods {
                assert!(item.get(*m).is_some(), "{m} {path} missing");
            }
        }
        assert_eq!(paths.len(), expected.len(), "no undocumented extras");
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local ref");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(s)) => out.push(s.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
