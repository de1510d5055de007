//! OpenAPI import and export: an OpenAPI 3.0/3.1 or Swagger 2.0 document (JSON or
//! YAML) to an API's operations, and an API back to an OpenAPI 3 document.
//!
//! Documents are handled as `serde_json::Value` rather than a typed model: one code
//! path reads all three versions, keeps every field the portal may later render
//! (schemas, examples, extensions) untouched, and lets a structural error name the
//! JSON pointer where the document breaks.

mod address;
mod export;
pub mod fetch;
mod parse;
mod refs;
mod swagger;
#[cfg(test)]
mod swagger_tests;
#[cfg(test)]
mod tests;
pub mod view;
#[cfg(test)]
mod view_tests;

use std::collections::{HashMap, HashSet};

use portcullis_core::config::{Api, Operation};
use portcullis_core::router::UrlTemplate;
use serde_json::Value;

pub use export::export;
pub use parse::parse_document;
pub use swagger::to_openapi3;

/// The HTTP methods a path item may hold operations for, in document order.
pub const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The vendor extension marking an operation for any method (`*`): exported as a
/// copy under every method of [`METHODS`], read back as one operation.
pub const ANY_METHOD_EXTENSION: &str = "x-portcullis-any-method";

/// Why a document cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The text is not UTF-8.
    #[error("the document is not UTF-8: {0}")]
    Encoding(String),
    /// The text is not JSON or YAML.
    #[error("the document is not valid {format}: {message} (line {line}, column {column})")]
    Syntax {
        /// `JSON` or `YAML`.
        format: &'static str,
        /// From 1 (0 when the parser gave none).
        line: usize,
        /// From 1 (0 when the parser gave none).
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// It parses, but is not an OpenAPI document this importer can read.
    #[error("the document is not a usable OpenAPI document at `{pointer}`: {message}")]
    Structure {
        /// JSON pointer (RFC 6901) of the offending value.
        pointer: String,
        /// What is wrong there.
        message: String,
    },
}

impl ImportError {
    fn structure(pointer: &str, message: impl Into<String>) -> Self {
        ImportError::Structure {
            pointer: pointer.to_owned(),
            message: message.into(),
        }
    }
}

/// `~` and `/` escaped for a JSON pointer segment.
pub fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Which specification a document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Swagger 2.0.
    Swagger2,
    /// OpenAPI 3.0.x.
    OpenApi30,
    /// OpenAPI 3.1.x.
    OpenApi31,
}

/// One operation read from a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedOperation {
    /// Unique within the document, valid as a core id.
    pub id: String,
    /// `summary`, else the `operationId`, else empty.
    pub display_name: String,
    /// `description`, else empty.
    pub description: String,
    /// Upper-case method, `*` for any method.
    pub method: String,
    /// The core URL template made from the path key.
    pub url_template: String,
    /// The path key in the document (`/users/{id}`).
    pub path: String,
    /// The method key in the document (`get`; the first copy's for any method).
    pub method_key: String,
}

/// What a document gives an API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Which specification it follows.
    pub version: Version,
    /// `info.title`.
    pub title: Option<String>,
    /// `info.description`.
    pub description: Option<String>,
    /// The first absolute http(s) server URL (Swagger: `schemes`/`host`/`basePath`).
    pub service_url: Option<String>,
    /// The operations, in document order.
    pub operations: Vec<ImportedOperation>,
}

/// Reads the API-relevant parts of a parsed document, checking its structure.
pub fn read_document(doc: &Value) -> Result<Imported, ImportError> {
    let root = doc
        .as_object()
        .ok_or_else(|| ImportError::structure("", "the document must be an object"))?;
    let version = match (root.get("openapi"), root.get("swagger")) {
        (Some(Value::String(v)), _) if v.starts_with("3.0") => Version::OpenApi30,
        (Some(Value::String(v)), _) if v.starts_with("3.1") => Version::OpenApi31,
        (Some(other), _) => {
            return Err(ImportError::structure(
                "/openapi",
                format!("unsupported OpenAPI version {other}: 3.0.x or 3.1.x expected"),
            ))
        }
        (None, Some(Value::String(v))) if v == "2.0" => Version::Swagger2,
        (None, Some(other)) => {
            return Err(ImportError::structure(
                "/swagger",
                format!("unsupported Swagger version {other}: \"2.0\" expected"),
            ))
        }
        (None, None) => {
            return Err(ImportError::structure(
                "",
                "neither `openapi` (3.0/3.1) nor `swagger` (2.0) is given",
            ))
        }
    };
    let info = match root.get("info") {
        None => None,
        Some(Value::Object(info)) => Some(info),
        Some(_) => return Err(ImportError::structure("/info", "must be an object")),
    };
    let title = optional_string(info.and_then(|i| i.get("title")), "/info/title")?;
    let description =
        optional_string(info.and_then(|i| i.get("description")), "/info/description")?;
    let service_url = match version {
        Version::Swagger2 => swagger_service_url(root)?,
        _ => openapi_service_url(root)?,
    };
    let paths = match root.get("paths") {
        Some(Value::Object(paths)) => Some(paths),
        None if version == Version::OpenApi31 => None,
        None => return Err(ImportError::structure("/paths", "is required")),
        Some(_) => return Err(ImportError::structure("/paths", "must be an object")),
    };
    let mut operations = Vec::new();
    let mut taken = HashSet::new();
    for (path, item) in paths.into_iter().flatten() {
        if path.starts_with("x-") {
            continue;
        }
        let path_pointer = format!("/paths/{}", escape_pointer(path));
        if !path.starts_with('/') {
            return Err(ImportError::structure(
                &path_pointer,
                "a path must start with '/'",
            ));
        }
        let url_template =
            to_url_template(path).map_err(|m| ImportError::structure(&path_pointer, m))?;
        let item = resolve_ref(doc, item, &path_pointer)?;
        let item = item.as_object().ok_or_else(|| {
            ImportError::structure(&path_pointer, "a path item must be an object")
        })?;
        let mut any_method_read = false;
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let pointer = format!("{path_pointer}/{method}");
            let op = op.as_object().ok_or_else(|| {
                ImportError::structure(&pointer, "an operation must be an object")
            })?;
            let any_method = op.get(ANY_METHOD_EXTENSION) == Some(&Value::Bool(true));
            if any_method && any_method_read {
                // Another copy of the any-method operation already read.
                continue;
            }
            any_method_read |= any_method;
            match op.get("responses") {
                Some(Value::Object(_)) => {}
                None if version == Version::OpenApi31 => {}
                None => {
                    return Err(ImportError::structure(
                        &format!("{pointer}/responses"),
                        "is required",
                    ))
                }
                Some(_) => {
                    return Err(ImportError::structure(
                        &format!("{pointer}/responses"),
                        "must be an object",
                    ))
                }
            }
            let operation_id =
                optional_string(op.get("operationId"), &format!("{pointer}/operationId"))?;
            let summary = optional_string(op.get("summary"), &format!("{pointer}/summary"))?;
            let description =
                optional_string(op.get("description"), &format!("{pointer}/description"))?;
            let base = operation_id
                .as_deref()
                .map(sanitize_id)
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| derive_id(method, path));
            let id = unique_id(&base, &mut taken);
            operations.push(ImportedOperation {
                id,
                display_name: summary.or_else(|| operation_id.clone()).unwrap_or_default(),
                description: description.unwrap_or_default(),
                method: if any_method {
                    "*".to_owned()
                } else {
                    method.to_ascii_uppercase()
                },
                url_template: url_template.clone(),
                path: path.clone(),
                method_key: method.to_owned(),
            });
        }
    }
    Ok(Imported {
        version,
        title,
        description,
        service_url,
        operations,
    })
}

fn optional_string(value: Option<&Value>, pointer: &str) -> Result<Option<String>, ImportError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ImportError::structure(pointer, "must be a string")),
    }
}

/// A path item's local `$ref` (`#/...`), followed once; other refs are refused.
fn resolve_ref<'a>(
    doc: &'a Value,
    item: &'a Value,
    pointer: &str,
) -> Result<&'a Value, ImportError> {
    let Some(reference) = item.get("$ref") else {
        return Ok(item);
    };
    let target = reference
        .as_str()
        .and_then(|r| r.strip_prefix('#'))
        .ok_or_else(|| {
            ImportError::structure(
                &format!("{pointer}/$ref"),
                "only local references (`#/...`) are supported",
            )
        })?;
    doc.pointer(target).ok_or_else(|| {
        ImportError::structure(
            &format!("{pointer}/$ref"),
            format!("`#{target}` is not in the document"),
        )
    })
}

/// The first `servers[].url` that is absolute http(s), server variables replaced by
/// their defaults.
fn openapi_service_url(
    root: &serde_json::Map<String, Value>,
) -> Result<Option<String>, ImportError> {
    let servers = match root.get("servers") {
        None => return Ok(None),
        Some(Value::Array(servers)) => servers,
        Some(_) => return Err(ImportError::structure("/servers", "must be an array")),
    };
    for (i, server) in servers.iter().enumerate() {
        let pointer = format!("/servers/{i}");
        let url = server
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| ImportError::structure(&format!("{pointer}/url"), "must be a string"))?;
        let mut url = url.to_owned();
        if let Some(Value::Object(vars)) = server.get("variables") {
            for (name, var) in vars {
                if let Some(default) = var.get("default").and_then(Value::as_str) {
                    url = url.replace(&format!("{{{name}}}"), default);
                }
            }
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(Some(url));
        }
    }
    Ok(None)
}

/// Swagger 2.0: `schemes[0]` (https preferred) `://` `host` `basePath`, when `host` is given.
fn swagger_service_url(
    root: &serde_json::Map<String, Value>,
) -> Result<Option<String>, ImportError> {
    let host = optional_string(root.get("host"), "/host")?;
    let base = optional_string(root.get("basePath"), "/basePath")?.unwrap_or_default();
    let Some(host) = host else { return Ok(None) };
    let schemes: Vec<&str> = match root.get("schemes") {
        None => Vec::new(),
        Some(Value::Array(s)) => s.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(ImportError::structure("/schemes", "must be an array")),
    };
    let scheme = if schemes.contains(&"https") || schemes.is_empty() {
        "https"
    } else {
        "http"
    };
    let base = base.trim_end_matches('/');
    Ok(Some(format!("{scheme}://{host}{base}")))
}

/// The core URL template of an OpenAPI path: `{param}` segments kept (names with other
/// characters than `A-Z a-z 0-9 _ - .` have them replaced by `_`); a segment mixing
/// text and a parameter (`{name}.json`) becomes that parameter alone (core matches
/// whole segments), so it matches a little more than the document says.
pub fn to_url_template(path: &str) -> Result<String, String> {
    let body = path.strip_prefix('/').ok_or("a path must start with '/'")?;
    let mut out = String::new();
    let mut names = HashSet::new();
    for segment in body.split('/') {
        out.push('/');
        if segment.is_empty() {
            continue;
        }
        if let Some(start) = segment.find('{') {
            let end = segment[start..]
                .find('}')
                .map(|e| start + e)
                .ok_or_else(|| format!("unclosed '{{' in segment `{segment}`"))?;
            let raw = &segment[start + 1..end];
            let mut name: String = raw
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if name.is_empty() {
                name.push('_');
            }
            let mut unique = name.clone();
            let mut n = 2;
            while !names.insert(unique.clone()) {
                unique = format!("{name}{n}");
                n += 1;
            }
            out.push('{');
            out.push_str(&unique);
            out.push('}');
        } else {
            out.push_str(segment);
        }
    }
    // A trailing empty segment (`/users/`) leaves a trailing '/', which core ignores;
    // a `//` inside is refused by core's parser below.
    UrlTemplate::parse(&out).map_err(|e| format!("cannot be a URL template: {e}"))?;
    Ok(out)
}

/// An `operationId` made valid for core: characters other than `A-Z a-z 0-9 - . _ ~`
/// become `-`, runs of `-` collapse, at most 200 bytes (room for a `-N` suffix).
pub fn sanitize_id(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || "-._~".contains(c) {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches('-');
    trimmed.chars().take(200).collect()
}

/// An id from method and path: `get /users/{id}` → `get-users-id`.
pub fn derive_id(method: &str, path: &str) -> String {
    let id = sanitize_id(&format!("{method}-{path}"));
    if id.is_empty() {
        method.to_owned()
    } else {
        id
    }
}

/// `base`, or `base-2`, `base-3`, ... whichever is not taken yet (and takes it).
fn unique_id(base: &str, taken: &mut HashSet<String>) -> String {
    let mut id = base.to_owned();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// A document's text read for import: parsed, checked, and converted to OpenAPI 3
/// when it is Swagger 2.0, so only OpenAPI 3 is ever stored.
pub fn import_document(bytes: &[u8]) -> Result<(Value, Imported), ImportError> {
    let document = parse_document(bytes)?;
    let imported = read_document(&document)?;
    if imported.version != Version::Swagger2 {
        return Ok((document, imported));
    }
    // The conversion keeps paths, methods and operation fields, so what was read
    // from the Swagger document holds for the converted one.
    Ok((to_openapi3(&document), imported))
}

/// What an import request gives besides the document.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The API URL suffix; required when the API does not exist.
    pub path: Option<String>,
    /// The upstream base URL; overrides the document's server.
    pub service_url: Option<String>,
}

/// The API after importing `imported` into `existing` (or a new one with `id`).
///
/// An existing API keeps its settings, policies and upstream (unless `serviceUrl` is
/// given); its title and description follow the document. Its operations are
/// replaced by the document's, an operation keeping its policy when its id stays.
pub fn merge(
    id: &str,
    existing: Option<&Api>,
    imported: &Imported,
    options: &ImportOptions,
) -> Result<Api, String> {
    let mut api = match existing {
        Some(api) => api.clone(),
        None => {
            let path = options
                .path
                .clone()
                .ok_or("the API does not exist yet: give its URL suffix as `path`")?;
            let service_url = options
                .service_url
                .clone()
                .or_else(|| imported.service_url.clone())
                .ok_or(
                    "the document names no absolute http(s) server URL: give the upstream as `serviceUrl`",
                )?;
            new_api(id, path, service_url)?
        }
    };
    if existing.is_some() {
        if let Some(path) = &options.path {
            api.path = path.clone();
        }
        if let Some(url) = &options.service_url {
            api.service_url = Some(url.clone());
            api.backend_id = None;
        }
    }
    if let Some(title) = &imported.title {
        api.display_name = title.clone();
    }
    if let Some(description) = &imported.description {
        api.description = description.clone();
    }
    let mut policies: HashMap<String, Option<String>> = api
        .operations
        .drain(..)
        .map(|op| (op.id, op.policy))
        .collect();
    api.operations = imported
        .operations
        .iter()
        .map(|op| Operation {
            id: op.id.clone(),
            display_name: op.display_name.clone(),
            description: op.description.clone(),
            method: op.method.clone(),
            url_template: op.url_template.clone(),
            policy: policies.remove(&op.id).flatten(),
        })
        .collect();
    Ok(api)
}

/// A new API with core's defaults for everything but id, path and upstream.
fn new_api(id: &str, path: String, service_url: String) -> Result<Api, String> {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "path": path,
        "serviceUrl": service_url,
    }))
    .map_err(|e| format!("invalid API: {e}"))
}
