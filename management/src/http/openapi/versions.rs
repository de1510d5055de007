//! The OpenAPI of version sets and API revisions.

use serde_json::{json, Map, Value};

use super::{json_content, ok_json, operation, param, problem, schema_ref, with_etag};

/// `/apis/{id}/revisions`, `.../{rev}` and `.../{rev}/make-current`.
pub(super) fn revision_paths() -> Vec<(String, Value)> {
    let id = || param("id", "The API's id (its current revision)");
    let rev = || json!({ "name": "rev", "in": "path", "required": true, "description": "The revision number", "schema": { "type": "integer", "minimum": 1 } });
    let notes = || {
        Some(json!({ "required": false, "content": json_content(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "apiRevisionDescription": { "type": "string", "description": "Release notes (`notes` is accepted too)" },
            },
        })) }))
    };
    let list = json!({
        "type": "object",
        "properties": {
            "value": { "type": "array", "items": schema_ref("Api") },
            "count": { "type": "integer" },
        },
    });
    vec![
        (
            "/apis/{id}/revisions".to_owned(),
            json!({
                "get": operation(
                    "List an API's revisions, the current one included, by number",
                    vec![id()],
                    None,
                    vec![
                        ("200", ok_json("Every revision", list)),
                        ("400", problem("The id names a non-current revision")),
                        ("404", problem("No such API")),
                    ],
                ),
                "post": operation(
                    "Create the next revision of an API: a copy of its current revision (operations, policies, imported document), not current, reachable at `<path>;rev=N`; its entity id is `<api>~rev<N>`",
                    vec![id()],
                    notes(),
                    vec![
                        ("201", with_etag(ok_json("The new revision", schema_ref("Api")))),
                        ("400", problem("The id names a non-current revision, or a bad body")),
                        ("404", problem("No such API")),
                    ],
                ),
            }),
        ),
        (
            "/apis/{id}/revisions/{rev}".to_owned(),
            json!({
                "delete": operation(
                    "Delete a non-current revision",
                    vec![id(), rev()],
                    None,
                    vec![
                        ("204", json!({ "description": "Deleted" })),
                        ("404", problem("No such API or revision")),
                        ("409", problem("The revision is the current one")),
                    ],
                ),
            }),
        ),
        (
            "/apis/{id}/revisions/{rev}/make-current".to_owned(),
            json!({
                "post": operation(
                    "Make a revision current in one change (one configuration revision): its content becomes the API, the previous current one becomes revision entity `<api>~rev<old>`",
                    vec![id(), rev()],
                    notes(),
                    vec![
                        ("200", with_etag(ok_json("The API, now at that revision", schema_ref("Api")))),
                        ("400", problem("The id names a non-current revision, or the result does not compile")),
                        ("404", problem("No such API or revision")),
                    ],
                ),
            }),
        ),
    ]
}

/// `ApiVersionSet`, and the version and revision fields of `Api`.
pub(super) fn version_schemas(schemas: &mut Map<String, Value>) {
    let string = json!({ "type": "string" });
    schemas.insert(
        "ApiVersionSet".into(),
        json!({
            "type": "object",
            "required": ["versioningScheme"],
            "properties": {
                "id": string,
                "displayName": string,
                "description": string,
                "versioningScheme": { "type": "string", "enum": ["Segment", "Header", "Query"], "description": "Segment: `/<api path>/<version>/...`; Header: the header `versionHeaderName`; Query: the query parameter `versionQueryName` (forwarded to the backend as sent)" },
                "versionHeaderName": { "type": "string", "description": "Required with Header" },
                "versionQueryName": { "type": "string", "description": "Required with Query" },
                "defaultVersion": { "type": "string", "description": "The version a request that names none reaches; without it, the API with an empty apiVersion (\"Original\"), if any" },
            },
        }),
    );
    if let Some(Value::Object(props)) = schemas
        .get_mut("Api")
        .and_then(|api| api.get_mut("properties"))
    {
        props.insert(
            "apiVersionSetId".into(),
            json!({ "type": "string", "description": "The version set this API is a version of" }),
        );
        props.insert("apiVersion".into(), json!({ "type": "string", "description": "The version identifier (up to 64 of A-Z a-z 0-9 - . _ ~); empty: the original version" }));
        props.insert("apiRevision".into(), json!({ "type": "integer", "minimum": 1, "default": 1, "description": "The revision number; kept when a PUT leaves it out" }));
        props.insert("isCurrent".into(), json!({ "type": "boolean", "default": true, "description": "Whether this is the current revision (served at the plain path); change it with make-current" }));
        props.insert("apiRevisionOf".into(), json!({ "type": "string", "description": "For a non-current revision: the API it is a revision of" }));
        props.insert(
            "apiRevisionDescription".into(),
            json!({ "type": "string", "description": "Release notes" }),
        );
    }
}
