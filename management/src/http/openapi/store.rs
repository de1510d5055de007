//! The OpenAPI of a gateway's shared-state store: its setting on the gateway
//! entity and its health in an instance's heartbeat.

use serde_json::{json, Map, Value};

/// `StoreSettings` (core's, JSON camelCase) and `StateStoreHealth`.
pub(super) fn store_schemas(schemas: &mut Map<String, Value>) {
    schemas.insert(
        "StoreSettings".into(),
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "Where the gateway keeps rate-limit and quota counters, limit-concurrency slots and the external cache. Absent: in process (each replica alone), unless the gateway's --store flag says otherwise; the flag wins. The password is never shown: answers and the audit log have `***` in its place, and a PUT that sends `***` back keeps the stored password while the scheme, host, port and user are unchanged. It is stored sealed and reaches only the gateway, in its signed snapshot.",
            "properties": {
                "url": {
                    "type": "string",
                    "default": "local",
                    "example": "redis://:***@cache:6379/0",
                    "description": "`local`, or redis://[user[:password]@]host[:port][/db] or rediss:// (TLS); no query parameters",
                },
                "counting": {
                    "type": "string",
                    "enum": ["exact", "approximate"],
                    "default": "exact",
                    "description": "exact: every limit decision is one atomic call to Redis; approximate: counted locally and synced every syncIntervalMs (a bounded overshoot)",
                },
                "onFailure": {
                    "type": "string",
                    "enum": ["open", "closed"],
                    "default": "open",
                    "description": "When the store cannot answer in time: open lets requests through, closed answers 503 with Retry-After",
                },
                "timeoutMs": { "type": "integer", "minimum": 1, "maximum": 60000, "default": 100, "description": "Bound on one store call" },
                "syncIntervalMs": { "type": "integer", "minimum": 10, "maximum": 60000, "default": 200, "description": "Approximate counting: time between syncs" },
                "keyPrefix": { "type": "string", "minLength": 1, "maxLength": 200, "description": "Prefix of every key; default `portcullis:{gatewayId}:`, shared by the gateway's replicas only" },
                "maxEntryBytes": { "type": "integer", "minimum": 1, "maximum": 536870912, "default": 1048576, "description": "Largest value the external cache stores" },
            },
        }),
    );
    schemas.insert(
        "StateStoreHealth".into(),
        json!({
            "type": "object",
            "required": ["target", "counting", "onFailure", "healthy", "errors"],
            "description": "How the instance's shared-state store (Redis) is doing; absent for an in-process store",
            "properties": {
                "target": { "type": "string", "example": "redis://:***@cache:6379/0", "description": "The store's URL, password hidden" },
                "counting": { "type": "string", "enum": ["exact", "approximate"] },
                "onFailure": { "type": "string", "enum": ["open", "closed"] },
                "healthy": { "type": "boolean", "description": "Whether the last call was answered in time" },
                "errors": { "type": "integer", "format": "int64", "minimum": 0, "description": "Calls that failed (timed out, refused, unreachable) since the instance started" },
                "lastError": { "type": "string", "description": "Why the last failed call failed" },
                "p99Micros": { "type": "integer", "format": "int64", "minimum": 0, "description": "Latency of recent calls, 99th percentile, in microseconds" },
            },
        }),
    );
}
