//! Seeding a management plane through its REST API with the example
//! configuration, as `demo` and `bootstrap` do.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use portcullis_core::callout::CalloutRequest;
use portcullis_runtime_tokio::Callouts;
use serde_json::{json, Value};

/// The example configuration shipped in the repository: what is seeded.
const EXAMPLE_CONFIG: &str = include_str!("../examples/gateway.json");
/// The sample backend's OpenAPI description: imported into the sample APIs so the
/// developer portal shows their operations with schemas and examples.
const SAMPLE_OPENAPI: &str = include_str!("../examples/sample-openapi.yaml");
/// The backend address the example configuration points at.
const EXAMPLE_BACKEND: &str = "http://127.0.0.1:8000";

/// What seeding produced.
pub(crate) struct Seeded {
    /// The sample APIs' ids (for the gateways that serve them).
    pub(crate) api_ids: Vec<String>,
    /// The first subscription's primary key.
    pub(crate) subscription_key: String,
    /// Path of the sample API that needs no key.
    pub(crate) open_path: String,
    /// Path of the sample API that needs a subscription key.
    pub(crate) keyed_path: String,
}

/// A management API client with the admin token.
pub(crate) struct Admin {
    client: Callouts,
    base: String,
    token: String,
}

impl Admin {
    /// A client of the management plane at `base` (no trailing slash).
    pub(crate) fn new(base: &str, token: &str) -> anyhow::Result<Admin> {
        Ok(Admin {
            client: Callouts::new(None).context("setting up the HTTP client")?,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// Sends `method path` with a JSON body; returns the JSON answer of a 2xx.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let body = Bytes::from(serde_json::to_vec(body)?);
        self.send(method, path, "application/json", body).await
    }

    /// Sends `method path` with a body of `content_type`; returns the JSON answer of a 2xx.
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> anyhow::Result<Value> {
        let request = CalloutRequest {
            method: method.to_owned(),
            url: format!("{}{path}", self.base),
            headers: vec![
                ("Authorization".into(), format!("Bearer {}", self.token)),
                ("Content-Type".into(), content_type.to_owned()),
            ],
            body,
            timeout: Duration::from_secs(30),
        };
        let response = self
            .client
            .perform(request)
            .await
            .with_context(|| format!("{method} {path}"))?;
        let body = response.body.unwrap_or_default();
        if !(200..300).contains(&response.status) {
            bail!(
                "{method} {path}: {} {}",
                response.status,
                String::from_utf8_lossy(&body)
            );
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("{method} {path}: answer is not JSON"))
    }
}

/// Puts the example configuration into the management plane, one entity at a
/// time as an operator would (each a PUT: seeding twice changes nothing).
pub(crate) async fn seed(admin: &Admin, backend_url: &str) -> anyhow::Result<Seeded> {
    let example: Value =
        serde_json::from_str(EXAMPLE_CONFIG).context("parsing the example configuration")?;
    let list = |name: &str| example[name].as_array().cloned().unwrap_or_default();

    let mut api_ids = Vec::new();
    let (mut open_path, mut keyed_path) = (None, None);
    for backend in list("backends") {
        let mut backend = backend;
        point_at(&mut backend["url"], backend_url);
        admin
            .call("PUT", &format!("/backends/{}", id(&backend)?), &backend)
            .await?;
    }
    for api in list("apis") {
        let mut api = api;
        point_at(&mut api["serviceUrl"], backend_url);
        let api_id = id(&api)?.to_owned();
        let path = api["path"].as_str().unwrap_or_default().to_owned();
        if api["subscriptionRequired"] == Value::Bool(false) {
            open_path.get_or_insert(path);
        } else {
            keyed_path.get_or_insert(path);
        }
        admin.call("PUT", &format!("/apis/{api_id}"), &api).await?;
        // Both sample APIs front the same backend: one description for both.
        admin
            .send(
                "PUT",
                &format!("/apis/{api_id}/openapi"),
                "application/yaml",
                Bytes::from_static(SAMPLE_OPENAPI.as_bytes()),
            )
            .await?;
        api_ids.push(api_id);
    }
    for product in list("products") {
        admin
            .call("PUT", &format!("/products/{}", id(&product)?), &product)
            .await?;
    }
    // Subscriptions get fresh keys from the management plane, not the example's.
    let mut subscription_key = None;
    for subscription in list("subscriptions") {
        let mut subscription = subscription;
        if let Some(fields) = subscription.as_object_mut() {
            fields.remove("primaryKey");
            fields.remove("secondaryKey");
        }
        let sub_id = id(&subscription)?;
        let created = admin
            .call("PUT", &format!("/subscriptions/{sub_id}"), &subscription)
            .await?;
        if subscription_key.is_none() {
            subscription_key = match created["primaryKey"].as_str() {
                Some(key) => Some(key.to_owned()),
                // Seeded before (an update does not show the keys): ask for them.
                None => admin
                    .call(
                        "POST",
                        &format!("/subscriptions/{sub_id}/secrets"),
                        &json!({}),
                    )
                    .await?["primaryKey"]
                    .as_str()
                    .map(str::to_owned),
            };
        }
    }
    Ok(Seeded {
        api_ids,
        subscription_key: subscription_key
            .context("the example configuration has no subscription")?,
        open_path: open_path.context("the example configuration has no open API")?,
        keyed_path: keyed_path.context("the example configuration has no keyed API")?,
    })
}

fn id(entity: &Value) -> anyhow::Result<&str> {
    entity["id"]
        .as_str()
        .context("an entity of the example configuration has no id")
}

/// Replaces the example's backend address in a URL with the sample backend's.
fn point_at(url: &mut Value, backend_url: &str) {
    if let Some(s) = url.as_str() {
        if s.starts_with(EXAMPLE_BACKEND) {
            *url = Value::String(s.replacen(EXAMPLE_BACKEND, backend_url, 1));
        }
    }
}

/// Creates or replaces gateway `id` (its JSON `entity`) and returns a new
/// gateway token for it (`GatewayKey ...`, valid 30 days).
pub(crate) async fn gateway_with_token(
    admin: &Admin,
    id: &str,
    entity: &Value,
) -> anyhow::Result<String> {
    admin
        .call("PUT", &format!("/gateways/{id}"), entity)
        .await?;
    let token = admin
        .call("POST", &format!("/gateways/{id}/token"), &json!({}))
        .await?;
    Ok(token["value"]
        .as_str()
        .context("the token answer has no value")?
        .to_owned())
}
