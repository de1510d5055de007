//! A gateway's shared-state store setting (`store` on the gateway entity, core's
//! `StoreSettings`): read from a request with the offending field named, the
//! redacted password (`***`) of a GET-modify-PUT resolved to the stored one,
//! and the password shown nowhere but in the gateway's signed snapshot (sealed
//! at rest with the key-encryption key, `***` in answers and the audit log).

use portcullis_core::config::store::{StoreSettings, StoreUrl};
use portcullis_core::config::ConfigError;
use serde::Serializer;
use serde_json::Value;

use super::StoreError;

/// What answers show in place of a password, and what a PUT may send back to
/// keep the stored one.
pub(crate) const REDACTED_PASSWORD: &str = "***";

/// Reads the `store` of gateway `id`'s body: each field checked on its own
/// first, so a 400 names the field and why (`store.url: the port must be 1 to
/// 65535`), then the whole, then core's `validate`. A URL whose password is
/// `***` keeps `existing`'s password when it points at the same server as the
/// same user (scheme, host, port and user unchanged); pointed elsewhere, it
/// must carry the password again, so a stored password is never sent to a new
/// server by someone who cannot read it.
pub(crate) fn read(
    id: &str,
    value: Value,
    existing: Option<&StoreSettings>,
) -> Result<StoreSettings, StoreError> {
    let invalid = |why: String| StoreError::Invalid(format!("gateway `{id}`: {why}"));
    let Value::Object(map) = &value else {
        return Err(invalid(
            "store must be an object such as {\"url\": \"redis://host:6379/0\"}".to_owned(),
        ));
    };
    for (field, v) in map {
        if field == "url" {
            if let Value::String(url) = v {
                url.parse::<StoreUrl>()
                    .map_err(|e| invalid(format!("store.{}", config_reason(e))))?;
                continue;
            }
        }
        let one = Value::Object([(field.clone(), v.clone())].into_iter().collect());
        serde_json::from_value::<StoreSettings>(one)
            .map_err(|e| invalid(format!("store.{field}: {e}")))?;
    }
    let mut settings: StoreSettings =
        serde_json::from_value(value).map_err(|e| invalid(format!("store: {e}")))?;
    settings
        .validate()
        .map_err(|e| invalid(format!("store.{}", config_reason(e))))?;
    if password(&settings) == Some(REDACTED_PASSWORD) {
        let kept = existing
            .filter(|old| same_server(old, &settings))
            .and_then(password)
            .ok_or_else(|| {
                invalid(format!(
                    "store.url: the password `{REDACTED_PASSWORD}` stands for the stored one, which is kept only while the scheme, host, port and user stay the same; send the password"
                ))
            })?;
        set_password(&mut settings, kept.to_owned());
    }
    Ok(settings)
}

/// Core's reason without its `store: ` prefix (`url: ...`, `timeoutMs must ...`).
fn config_reason(err: ConfigError) -> String {
    match err {
        ConfigError::Store(reason) => reason,
        other => other.to_string(),
    }
}

/// The password of the settings' Redis URL, if it has one.
pub(crate) fn password(settings: &StoreSettings) -> Option<&str> {
    match &settings.url {
        StoreUrl::Redis(r) => r.password.as_deref(),
        StoreUrl::Local => None,
    }
}

/// Puts `password` in the settings' Redis URL (nothing for `local`).
pub(crate) fn set_password(settings: &mut StoreSettings, password: String) {
    if let StoreUrl::Redis(r) = &mut settings.url {
        r.password = Some(password);
    }
}

/// Whether both name the same Redis server as the same user.
fn same_server(a: &StoreSettings, b: &StoreSettings) -> bool {
    match (&a.url, &b.url) {
        (StoreUrl::Redis(a), StoreUrl::Redis(b)) => {
            a.tls == b.tls && a.host == b.host && a.port == b.port && a.username == b.username
        }
        _ => false,
    }
}

/// Serializes a gateway's `store` with its password as `***`: what the
/// database, answers and the audit log hold (the sealed password is kept
/// apart).
pub(crate) fn serialize_redacted<S: Serializer>(
    store: &Option<StoreSettings>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match store {
        Some(settings) => s.serialize_some(&settings.redacted()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(value: Value, existing: Option<&StoreSettings>) -> String {
        match read("g1", value, existing) {
            Err(StoreError::Invalid(why)) => why,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn names_the_field_and_why() {
        assert_eq!(
            error(json!({"url": "redis://h:0"}), None),
            "gateway `g1`: store.url: the port must be 1 to 65535"
        );
        assert!(error(json!({"counting": "fast"}), None)
            .starts_with("gateway `g1`: store.counting: unknown variant `fast`"));
        assert!(error(json!({"timeoutMs": "soon"}), None)
            .starts_with("gateway `g1`: store.timeoutMs: invalid type"));
        assert_eq!(
            error(json!({"timeoutMs": 0}), None),
            "gateway `g1`: store.timeoutMs must be 1 to 60000, not 0"
        );
        assert!(error(json!({"colour": 1}), None).contains("store.colour: unknown field `colour`"));
        assert!(error(json!("redis://h"), None).contains("store must be an object"));
    }

    #[test]
    fn the_placeholder_keeps_the_password_for_the_same_server_only() {
        let old = read(
            "g1",
            json!({"url": "redis://app:secret@cache:6380/1"}),
            None,
        )
        .unwrap();
        assert_eq!(password(&old), Some("secret"));
        // Same server and user, another database: kept.
        let again = read(
            "g1",
            json!({"url": "redis://app:***@cache:6380/2", "counting": "approximate"}),
            Some(&old),
        )
        .unwrap();
        assert_eq!(password(&again), Some("secret"));
        // Another host, port, user or scheme: the password must be sent again.
        for moved in [
            "redis://app:***@elsewhere:6380/1",
            "redis://app:***@cache:6381/1",
            "redis://ops:***@cache:6380/1",
            "rediss://app:***@cache:6380/1",
        ] {
            assert!(
                error(json!({ "url": moved }), Some(&old)).contains("send the password"),
                "{moved}"
            );
        }
        // Nothing stored to keep.
        assert!(error(json!({"url": "redis://:***@cache"}), None).contains("send the password"));
        // A new password replaces the old one.
        let new = read(
            "g1",
            json!({"url": "redis://app:n3w@cache:6380/1"}),
            Some(&old),
        )
        .unwrap();
        assert_eq!(password(&new), Some("n3w"));
    }
}
