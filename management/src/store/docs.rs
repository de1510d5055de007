//! The stored form of each kind of entity: parsing request bodies, keeping secrets, redacting output.

use std::fmt;

use portcullis_core::config::store::StoreSettings;
use portcullis_core::config::{Api, Backend, NamedValue, Product, SubscriptionState, VersionSet};
use portcullis_core::config::{ApiType, Operation, ON_HANDSHAKE};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::gateway_store;
use super::secrets::random_hex;
use super::tls_docs::{CaCertificateDoc, CertificateDoc, HostnameDoc};
use super::{Kind, StoreError};

/// A stored entity, typed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Doc {
    /// Core `Api`.
    Api(Api),
    /// Core `Product`.
    Product(Product),
    /// A subscription with its keys.
    Subscription(SubscriptionDoc),
    /// A portal user.
    User(UserDoc),
    /// Core `Backend`.
    Backend(Backend),
    /// Core `NamedValue`.
    NamedValue(NamedValue),
    /// A policy fragment.
    Fragment(FragmentDoc),
    /// A gateway (its keys are kept apart).
    Gateway(GatewayDoc),
    /// A certificate with its private key (sealed in the database).
    Certificate(CertificateDoc),
    /// A trusted CA certificate.
    CaCertificate(CaCertificateDoc),
    /// A custom hostname of a gateway.
    Hostname(HostnameDoc),
    /// Core `VersionSet`.
    VersionSet(VersionSet),
}

/// A subscription as stored: the core's fields plus its owner.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SubscriptionDoc {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default)]
    pub state: SubscriptionState,
    pub primary_key: String,
    pub secondary_key: String,
}

impl fmt::Debug for SubscriptionDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionDoc")
            .field("id", &self.id)
            .field("scope", &self.scope)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A subscription as a PUT body gives it: keys and state optional.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscriptionInput {
    id: String,
    #[serde(default)]
    display_name: String,
    scope: String,
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default)]
    state: Option<SubscriptionState>,
    #[serde(default)]
    primary_key: Option<String>,
    #[serde(default)]
    secondary_key: Option<String>,
}

/// Whether a portal user may sign in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum UserState {
    #[default]
    Active,
    Blocked,
}

/// A developer portal user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserDoc {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub state: UserState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A named value as a PUT body gives it: the value may be left out to keep a secret one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NamedValueInput {
    name: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    secret: bool,
}

/// A policy fragment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FragmentDoc {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub value: String,
}

/// Where a gateway runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Location {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_or_region: Option<String>,
}

/// A gateway: where it is, which APIs it serves, where it keeps shared state.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct GatewayDoc {
    pub id: String,
    #[serde(default)]
    pub description: String,
    pub location: Location,
    #[serde(default)]
    pub apis: Vec<String>,
    /// Where API consumers reach this gateway (an absolute http(s) URL): the
    /// developer portal's "try it" sends requests there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the gateway keeps the policies' shared state (absent: in process,
    /// unless its own flag says otherwise). In memory with the Redis password;
    /// serialized (database, answers, audit) with `***` in its place.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "gateway_store::serialize_redacted"
    )]
    pub store: Option<StoreSettings>,
    /// The store's password sealed with the key-encryption key: in the
    /// database only, never in answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sealed_store_password: String,
}

impl fmt::Debug for GatewayDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayDoc")
            .field("id", &self.id)
            .field("location", &self.location)
            .field("apis", &self.apis)
            .field("url", &self.url)
            // The URL's Debug never shows the password.
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A gateway as a PUT body gives it (no sealed password; `store` read apart).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GatewayInput {
    id: String,
    #[serde(default)]
    description: String,
    location: Location,
    #[serde(default)]
    apis: Vec<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    store: Option<Value>,
}

/// Checks a gateway's public URL: absolute http or https, a host, no user info,
/// query or fragment.
pub(crate) fn check_gateway_url(id: &str, url: &str) -> Result<(), StoreError> {
    let invalid = |why: &str| {
        StoreError::Invalid(format!(
            "gateway `{id}`: url `{url}` {why}; give an absolute http or https URL such as http://127.0.0.1:8080"
        ))
    };
    let uri: hyper::Uri = url.parse().map_err(|_| invalid("is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid("is not http or https"));
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid("has no host"));
    };
    if authority.host().is_empty() {
        return Err(invalid("has no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("must not carry user info"));
    }
    if uri.query().is_some() {
        return Err(invalid("must not have a query"));
    }
    Ok(())
}

/// The name of a kind in the `entities` table.
pub(crate) fn table_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Api => "api",
        Kind::Product => "product",
        Kind::Subscription => "subscription",
        Kind::User => "user",
        Kind::Backend => "backend",
        Kind::NamedValue => "named-value",
        Kind::Fragment => "fragment",
        Kind::Gateway => "gateway",
        Kind::Certificate => "certificate",
        Kind::CaCertificate => "ca-certificate",
        Kind::Hostname => "hostname",
        Kind::VersionSet => "version-set",
    }
}

/// The kind named `name` in the `entities` table.
pub(crate) fn kind_from_table(name: &str) -> Option<Kind> {
    Kind::STORED.into_iter().find(|k| table_kind(*k) == name)
}

/// The field of a body that holds the id: `name` for named values, `id` otherwise.
fn id_field(kind: Kind) -> &'static str {
    match kind {
        Kind::NamedValue => "name",
        _ => "id",
    }
}

/// Ids appear in URLs and `{{name}}` references: 1 to 256 URL-unreserved characters,
/// and not `.` or `..`, which URLs resolve away.
pub(crate) fn check_id(kind: Kind, id: &str) -> Result<(), StoreError> {
    if id == "." || id == ".." {
        return Err(StoreError::Invalid(format!(
            "invalid {} id `{id}`: ids cannot be `.` or `..`",
            kind.noun()
        )));
    }
    let ok = !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid {} id `{id}`: use 1 to 256 letters, digits, '-', '.', '_' or '~'",
            kind.noun()
        )))
    }
}

impl Doc {
    /// The kind of entity.
    pub fn kind(&self) -> Kind {
        match self {
            Doc::Api(_) => Kind::Api,
            Doc::Product(_) => Kind::Product,
            Doc::Subscription(_) => Kind::Subscription,
            Doc::User(_) => Kind::User,
            Doc::Backend(_) => Kind::Backend,
            Doc::NamedValue(_) => Kind::NamedValue,
            Doc::Fragment(_) => Kind::Fragment,
            Doc::Gateway(_) => Kind::Gateway,
            Doc::Certificate(_) => Kind::Certificate,
            Doc::CaCertificate(_) => Kind::CaCertificate,
            Doc::Hostname(_) => Kind::Hostname,
            Doc::VersionSet(_) => Kind::VersionSet,
        }
    }

    /// Parses a PUT body for entity `id`. `existing` is the entity being replaced: its
    /// subscription keys, subscription state and secret value are kept when the body
    /// leaves them out. New subscription keys are generated here.
    pub fn from_request(
        kind: Kind,
        id: &str,
        body: Value,
        existing: Option<&Doc>,
    ) -> Result<Doc, StoreError> {
        let Value::Object(mut map) = body else {
            return Err(StoreError::Invalid(format!(
                "the {} body must be a JSON object",
                kind.noun()
            )));
        };
        let field = id_field(kind);
        match map.get(field) {
            None | Some(Value::Null) => {
                map.insert(field.to_owned(), Value::String(id.to_owned()));
            }
            Some(Value::String(given)) if given == id => {}
            Some(other) => {
                return Err(StoreError::Invalid(format!(
                    "`{field}` in the body ({other}) differs from the {} id `{id}` in the URL",
                    kind.noun()
                )))
            }
        }
        let body = Value::Object(map);
        Ok(match kind {
            Kind::Api => {
                let mut body = body;
                if let (Some(Doc::Api(old)), Value::Object(map)) = (existing, &mut body) {
                    // A replace that leaves the revision fields out keeps them:
                    // they change through the revision routes.
                    let kept = [
                        ("apiRevision", Value::from(old.api_revision)),
                        ("isCurrent", Value::from(old.is_current)),
                        ("apiRevisionOf", Value::from(old.api_revision_of.clone())),
                        (
                            "apiRevisionDescription",
                            Value::from(old.api_revision_description.clone()),
                        ),
                    ];
                    for (field, value) in kept {
                        map.entry(field).or_insert(value);
                    }
                }
                Doc::Api(with_handshake(parse(kind, body)?))
            }
            Kind::Product => Doc::Product(parse(kind, body)?),
            Kind::Backend => Doc::Backend(parse(kind, body)?),
            Kind::Fragment => Doc::Fragment(parse(kind, body)?),
            Kind::VersionSet => Doc::VersionSet(parse(kind, body)?),
            Kind::CaCertificate => Doc::CaCertificate(super::tls_docs::read_ca_upload(body)?),
            // The key stays in the clear here: the store seals it before writing.
            Kind::Certificate => {
                let upload = super::tls_docs::read_certificate_upload(body)?;
                Doc::Certificate(CertificateDoc {
                    id: upload.id,
                    certificate_pem: upload.certificate_pem,
                    info: upload.info,
                    sealed_private_key: String::new(),
                    private_key_pem: upload.private_key_pem,
                })
            }
            // Hostnames have their own routes (`Store::put_hostname`).
            Kind::Hostname => {
                return Err(StoreError::Invalid(format!(
                    "a {} is not written through this path",
                    kind.noun()
                )))
            }
            // The store's password stays in the clear here: the store seals it
            // before writing.
            Kind::Gateway => {
                let input: GatewayInput = parse(kind, body)?;
                if let Some(url) = &input.url {
                    check_gateway_url(id, url)?;
                }
                let old_store = match existing {
                    Some(Doc::Gateway(old)) => old.store.as_ref(),
                    _ => None,
                };
                let store = input
                    .store
                    .map(|value| gateway_store::read(id, value, old_store))
                    .transpose()?;
                Doc::Gateway(GatewayDoc {
                    id: input.id,
                    description: input.description,
                    location: input.location,
                    apis: input.apis,
                    url: input.url,
                    store,
                    sealed_store_password: String::new(),
                })
            }
            Kind::User => {
                let user: UserDoc = parse(kind, body)?;
                if user.email.is_empty()
                    || !user.email.contains('@')
                    || user.email.chars().any(char::is_whitespace)
                {
                    return Err(StoreError::Invalid(format!(
                        "user `{id}`: `{}` is not an email address",
                        user.email
                    )));
                }
                Doc::User(user)
            }
            Kind::Subscription => {
                let input: SubscriptionInput = parse(kind, body)?;
                let old = match existing {
                    Some(Doc::Subscription(s)) => Some(s),
                    _ => None,
                };
                let key = |given: Option<String>, old: Option<&String>| -> Result<_, StoreError> {
                    match (given, old) {
                        (Some(k), _) => Ok(k),
                        (None, Some(k)) => Ok(k.clone()),
                        (None, None) => random_hex(32),
                    }
                };
                Doc::Subscription(SubscriptionDoc {
                    id: input.id,
                    display_name: input.display_name,
                    scope: input.scope,
                    owner_id: input.owner_id,
                    state: input.state.or(old.map(|s| s.state)).unwrap_or_default(),
                    primary_key: key(input.primary_key, old.map(|s| &s.primary_key))?,
                    secondary_key: key(input.secondary_key, old.map(|s| &s.secondary_key))?,
                })
            }
            Kind::NamedValue => {
                let input: NamedValueInput = parse(kind, body)?;
                let value = match (input.value, existing) {
                    (Some(v), _) => v,
                    (None, Some(Doc::NamedValue(old))) => old.value.clone(),
                    (None, _) => {
                        return Err(StoreError::Invalid(format!(
                            "named value `{id}`: `value` is required"
                        )))
                    }
                };
                Doc::NamedValue(NamedValue {
                    name: input.name,
                    value,
                    secret: input.secret,
                })
            }
        })
    }

    /// Reads a body as stored in the database.
    pub fn from_stored(kind: Kind, json: &str) -> Result<Doc, StoreError> {
        fn read<T: DeserializeOwned>(json: &str) -> Result<T, StoreError> {
            serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
        }
        Ok(match kind {
            Kind::Api => Doc::Api(read(json)?),
            Kind::Product => Doc::Product(read(json)?),
            Kind::Subscription => Doc::Subscription(read(json)?),
            Kind::User => Doc::User(read(json)?),
            Kind::Backend => Doc::Backend(read(json)?),
            Kind::NamedValue => Doc::NamedValue(read(json)?),
            Kind::Fragment => Doc::Fragment(read(json)?),
            Kind::Gateway => Doc::Gateway(read(json)?),
            Kind::Certificate => Doc::Certificate(read(json)?),
            Kind::CaCertificate => Doc::CaCertificate(read(json)?),
            Kind::Hostname => Doc::Hostname(read(json)?),
            Kind::VersionSet => Doc::VersionSet(read(json)?),
        })
    }

    /// The full body, secrets included, as stored in the database.
    pub fn to_stored(&self) -> Value {
        let value = match self {
            Doc::Api(d) => serde_json::to_value(d),
            Doc::Product(d) => serde_json::to_value(d),
            Doc::Subscription(d) => serde_json::to_value(d),
            Doc::User(d) => serde_json::to_value(d),
            Doc::Backend(d) => serde_json::to_value(d),
            Doc::NamedValue(d) => serde_json::to_value(d),
            Doc::Fragment(d) => serde_json::to_value(d),
            Doc::Gateway(d) => serde_json::to_value(d),
            Doc::Certificate(d) => serde_json::to_value(d),
            Doc::CaCertificate(d) => serde_json::to_value(d),
            Doc::Hostname(d) => serde_json::to_value(d),
            Doc::VersionSet(d) => serde_json::to_value(d),
        };
        // Plain structs of strings, numbers, bools, options and vectors: serializing
        // them to a Value cannot fail.
        value.unwrap_or(Value::Null)
    }

    /// The body as responses show it: subscription keys left out, secret values
    /// `null`, a gateway's store password `***` and its sealed form left out.
    pub fn to_output(&self) -> Value {
        match self {
            // Never the key, sealed or not.
            Doc::Certificate(cert) => return cert.to_output(),
            Doc::Hostname(host) => return host.to_output(),
            _ => {}
        }
        let mut value = self.to_stored();
        if let Value::Object(map) = &mut value {
            match self {
                Doc::Subscription(_) => {
                    map.remove("primaryKey");
                    map.remove("secondaryKey");
                }
                Doc::NamedValue(nv) if nv.secret => {
                    map.insert("value".to_owned(), Value::Null);
                }
                Doc::Gateway(_) => {
                    map.remove("sealedStorePassword");
                }
                _ => {}
            }
        }
        value
    }

    /// The body for the audit log: redacted, and policy documents replaced by their size
    /// (an inline policy may hold a credential).
    pub fn to_audit(&self) -> String {
        let mut value = self.to_output();
        strip_policies(&mut value);
        value.to_string()
    }
}

fn strip_policies(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "policy" {
                    if let Value::String(xml) = v {
                        *v = Value::String(format!("<{} bytes>", xml.len()));
                    }
                } else {
                    strip_policies(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_policies),
        _ => {}
    }
}

/// A WebSocket API given without operations gets its one operation,
/// `onHandshake` (`GET /`), which APIM creates with the API.
fn with_handshake(mut api: Api) -> Api {
    if api.api_type == ApiType::Websocket && api.operations.is_empty() {
        api.operations.push(Operation {
            id: ON_HANDSHAKE.to_owned(),
            display_name: ON_HANDSHAKE.to_owned(),
            description: String::new(),
            method: "GET".to_owned(),
            url_template: "/".to_owned(),
            policy: None,
        });
    }
    api
}

fn parse<T: DeserializeOwned>(kind: Kind, body: Value) -> Result<T, StoreError> {
    serde_json::from_value(body)
        .map_err(|e| StoreError::Invalid(format!("invalid {} body: {e}", kind.noun())))
}
