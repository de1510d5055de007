//! OpenAPI import and export of an API: `PUT /apis/{id}/openapi` (the document in
//! the body), `POST /apis/{id}/openapi/import-url` (fetched from a URL) and
//! `GET /apis/{id}/openapi` (the API as an OpenAPI 3 document, JSON or YAML).

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::body::{check_media_type, JsonBody, RawBody, MAX_BODY};
use super::conditional::precondition;
use super::entities::put_response;
use super::problem::{DocumentLocation, Problem};
use super::{Shared, ADMIN_ACTOR};
use crate::openapi_import::fetch::{fetch, FetchError, FetchPolicy};
use crate::openapi_import::{self, ImportError, ImportOptions};
use crate::store::{Precondition, StoreError};

/// `/apis/{id}/openapi` and `/apis/{id}/openapi/import-url`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/apis/{id}/openapi", get(export).put(import_body))
        .route("/apis/{id}/openapi/import-url", post(import_url))
}

/// The query of `PUT /apis/{id}/openapi`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImportQuery {
    path: Option<String>,
    service_url: Option<String>,
    #[serde(default)]
    api_version_set_id: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    new_revision: bool,
}

/// Where an import goes besides the API: a version of a version set, or a new
/// revision of the API.
#[derive(Debug, Default, Clone)]
struct VersionTarget {
    /// Make the API a version of this version set.
    api_version_set_id: Option<String>,
    /// Its version identifier in the set.
    api_version: Option<String>,
    /// Import into a new revision of the API (a copy of its current revision),
    /// not into the API itself.
    new_revision: bool,
}

/// The body of `POST /apis/{id}/openapi/import-url`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImportUrlRequest {
    url: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    service_url: Option<String>,
    #[serde(default)]
    api_version_set_id: Option<String>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    new_revision: bool,
}

/// The query of `GET /apis/{id}/openapi`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<String>,
}

async fn import_body(
    State(state): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, Problem> {
    check_media_type(&req, "an OpenAPI document in JSON or YAML", |m| {
        m == "application/json"
            || m.ends_with("+json")
            || m == "application/yaml"
            || m == "application/x-yaml"
            || m == "text/yaml"
            || m == "text/x-yaml"
            || m.ends_with("+yaml")
            || m == "text/plain"
    })?;
    let query: ImportQuery = match uri.query() {
        None => ImportQuery::default(),
        Some(_) => Query::try_from_uri(&uri)
            .map(|Query(q)| q)
            .map_err(|e| Problem::invalid(e.body_text()))?,
    };
    let RawBody(bytes) = RawBody::from_request(req, &()).await?;
    let options = ImportOptions {
        path: query.path,
        service_url: query.service_url,
    };
    let precondition = precondition(&headers)?;
    let version = VersionTarget {
        api_version_set_id: query.api_version_set_id,
        api_version: query.api_version,
        new_revision: query.new_revision,
    };
    import(&state, id, precondition, bytes.to_vec(), options, version).await
}

async fn import_url(
    State(state): State<Shared>,
    Path(id): Path<String>,
    policy: Option<Extension<FetchPolicy>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ImportUrlRequest>,
) -> Result<Response, Problem> {
    let precondition = precondition(&headers)?;
    // Without a policy from the server, the safe default: public addresses only.
    let policy = policy.map(|Extension(p)| p).unwrap_or_default();
    let bytes = fetch(&body.url, MAX_BODY, policy)
        .await
        .map_err(fetch_problem)?;
    tracing::info!(api = %id, url = %body.url, bytes = bytes.len(), "fetched OpenAPI document");
    let options = ImportOptions {
        path: body.path,
        service_url: body.service_url,
    };
    let version = VersionTarget {
        api_version_set_id: body.api_version_set_id,
        api_version: body.api_version,
        new_revision: body.new_revision,
    };
    import(&state, id, precondition, bytes.to_vec(), options, version).await
}

/// Parses and reads the document off the runtime's workers, then stores the API.
async fn import(
    state: &Shared,
    id: String,
    precondition: Precondition,
    bytes: Vec<u8>,
    options: ImportOptions,
    version: VersionTarget,
) -> Result<Response, Problem> {
    let (document, imported) = state
        .blocking(move || {
            let (document, imported) = openapi_import::import_document(&bytes)?;
            Ok::<_, ImportError>((document.to_string(), imported))
        })
        .await?
        .map_err(|e| import_problem(&e))?;
    let now = state.now_unix();
    let written = state
        .write(move |s| {
            // A new revision starts as a copy of the current one, under its own id.
            let copy = if version.new_revision {
                Some(s.revision_copy(&id, None)?)
            } else {
                None
            };
            let api_id = copy.as_ref().map_or_else(|| id.clone(), |c| c.id.clone());
            let target = api_id.clone();
            s.import_api(
                &target,
                |current| {
                    let mut api = openapi_import::merge(
                        &api_id,
                        copy.as_ref().or(current),
                        &imported,
                        &options,
                    )
                    .map_err(StoreError::Invalid)?;
                    if let Some(set) = version.api_version_set_id {
                        api.api_version_set_id = Some(set);
                    }
                    if let Some(v) = version.api_version {
                        api.api_version = Some(v);
                    }
                    Ok(api)
                },
                document,
                precondition,
                ADMIN_ACTOR,
                now,
            )
        })
        .await?;
    Ok(put_response(written))
}

async fn export(
    State(state): State<Shared>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, Problem> {
    let query: ExportQuery = match uri.query() {
        None => ExportQuery::default(),
        Some(_) => Query::try_from_uri(&uri)
            .map(|Query(q)| q)
            .map_err(|e| Problem::invalid(e.body_text()))?,
    };
    let yaml = match query.format.as_deref() {
        None | Some("json") => false,
        Some("yaml") => true,
        Some(other) => {
            return Err(Problem::invalid(format!(
                "unknown format `{other}`: use `json` or `yaml`"
            )))
        }
    };
    let (api, stored) = state.read(move |s| s.api_with_document(&id)).await?;
    let stored = match stored {
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| Problem::internal(&e))?,
        ),
        None => None,
    };
    let document = openapi_import::export(&api, stored.as_ref());
    if !yaml {
        return Ok(Json(document).into_response());
    }
    let text = serde_yaml_ng::to_string(&document).map_err(|e| Problem::internal(&e))?;
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
    Ok(response)
}

/// 400 `invalid-openapi`, with where the document breaks.
fn import_problem(err: &ImportError) -> Problem {
    let location = match err {
        ImportError::Encoding(reason) => DocumentLocation {
            line: None,
            column: None,
            pointer: None,
            reason: reason.clone(),
        },
        ImportError::Syntax {
            line,
            column,
            message,
            ..
        } => DocumentLocation {
            line: Some(*line),
            column: Some(*column),
            pointer: None,
            reason: message.clone(),
        },
        ImportError::Structure { pointer, message } => DocumentLocation {
            line: None,
            column: None,
            pointer: Some(pointer.clone()),
            reason: message.clone(),
        },
    };
    Problem {
        document: Some(Box::new(location)),
        ..Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-openapi",
            "Invalid OpenAPI document",
            err.to_string(),
        )
    }
}

/// 400 for a URL that cannot (or may not) be fetched from, 502 when fetching it failed.
fn fetch_problem(err: FetchError) -> Problem {
    match err {
        FetchError::BadUrl(_) => Problem::invalid(err.to_string()),
        FetchError::Refused { .. } => Problem::new(
            StatusCode::BAD_REQUEST,
            "fetch-refused",
            "The URL's host is not a public address",
            err.to_string(),
        ),
        other => Problem::new(
            StatusCode::BAD_GATEWAY,
            "fetch-failed",
            "Fetching the document failed",
            other.to_string(),
        ),
    }
}
