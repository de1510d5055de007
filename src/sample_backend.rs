//! The sample backend that `portcullis demo` puts behind the gateway.

use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

/// The sample API's routes, as the example configuration describes them.
pub fn router() -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/users/{id}", get(user))
        .route("/echo", post(echo))
        .route("/slow", get(slow))
}

/// Serves the sample backend on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

async fn hello(headers: HeaderMap) -> impl IntoResponse {
    let via = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    Json(json!({
        "message": "Hello from the Portcullis sample backend",
        "forwardedFor": via("x-forwarded-for"),
        "forwardedHost": via("x-forwarded-host"),
        "forwardedProto": via("x-forwarded-proto"),
    }))
}

async fn user(Path(id): Path<String>) -> impl IntoResponse {
    Json(json!({ "id": id, "name": format!("User {id}") }))
}

async fn echo(headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| axum::http::HeaderValue::from_static("application/octet-stream"));
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, content_type)],
        body,
    )
}

#[derive(serde::Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

async fn slow(Query(q): Query<SlowQuery>) -> impl IntoResponse {
    let ms = q.ms.unwrap_or(1000).min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({ "sleptMs": ms }))
}
