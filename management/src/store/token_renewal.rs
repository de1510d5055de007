//! Gateway token renewal: a gateway exchanges its current, still valid token for
//! a fresh one, so one that stays connected never needs a restart.

use portcullis_core::sync::token;

use super::{GatewayToken, KeyType, Store, StoreError};

/// The lifetime of a renewed token: the longest an operator may give one.
pub const RENEWED_LIFETIME_SECS: u64 = token::MAX_LIFETIME_SECS;

impl Store {
    /// A fresh token for `gateway_id`, valid [`RENEWED_LIFETIME_SECS`] from
    /// `now_unix`, in exchange for the valid token `header_value`
    /// (`GatewayKey …`): refused like [`Store::verify_gateway_token`] refuses.
    /// It is signed with the key that signed the presented token, so regenerating
    /// that key still revokes every token renewed from it.
    pub fn renew_gateway_token(
        &self,
        header_value: &str,
        gateway_id: &str,
        now_unix: u64,
    ) -> Result<GatewayToken, StoreError> {
        self.verify_gateway_token(header_value, gateway_id, now_unix)?;
        let parsed =
            token::parse(header_value).map_err(|e| StoreError::Unauthorized(e.to_string()))?;
        let keys = self.gateway_keys(gateway_id)?;
        let which = if parsed.verify(&[keys.primary.as_bytes()], now_unix).is_ok() {
            KeyType::Primary
        } else {
            KeyType::Secondary
        };
        let expiry = now_unix.saturating_add(RENEWED_LIFETIME_SECS);
        self.gateway_token(gateway_id, which, Some(expiry), now_unix)
    }
}
