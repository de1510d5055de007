//! Gateway tokens: `GatewayKey <id>&<expiry>&<signature>`, signed with a gateway key.
//!
//! The signature is HMAC-SHA256 over `"<id>\n<expiry>"` with the gateway's primary or
//! secondary key, base64-encoded; the expiry is in Unix seconds. A token carries no
//! secret of its own: regenerating the key that signed it invalidates it.

use ring::hmac;

use crate::expr::encoding::{base64_decode, base64_encode};

/// The authorization scheme gateways send their token under.
pub const SCHEME: &str = "GatewayKey";

/// The longest lifetime a token may be issued with: 30 days.
pub const MAX_LIFETIME_SECS: u64 = 30 * 24 * 3600;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `GatewayKey <id>&<expiry>&<signature>`.
    #[error("malformed gateway token: {0}")]
    Malformed(&'static str),
    /// The expiry has passed.
    #[error("gateway token expired")]
    Expired,
    /// The signature matches none of the gateway's keys.
    #[error("gateway token signature does not match the gateway's keys")]
    BadSignature,
}

/// Makes a token for `gateway_id` valid until `expiry_unix`, signed with `key`.
pub fn sign(gateway_id: &str, expiry_unix: u64, key: &[u8]) -> String {
    let signature = mac(gateway_id, expiry_unix, key);
    format!(
        "{SCHEME} {gateway_id}&{expiry_unix}&{}",
        base64_encode(signature.as_ref())
    )
}

fn mac(gateway_id: &str, expiry_unix: u64, key: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(gateway_id.as_bytes());
    ctx.update(b"\n");
    ctx.update(expiry_unix.to_string().as_bytes());
    ctx.sign()
}

/// A token taken apart, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    /// The gateway the token is for.
    pub gateway_id: &'a str,
    /// When it stops being valid, Unix seconds.
    pub expiry_unix: u64,
    signature: Vec<u8>,
}

/// Takes a token apart; the `GatewayKey ` prefix is optional.
pub fn parse(value: &str) -> Result<ParsedToken<'_>, TokenError> {
    let value = value.trim();
    let body = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(SCHEME) => rest.trim_start(),
        Some(_) => return Err(TokenError::Malformed("unknown scheme")),
        None => value,
    };
    // The id may not contain '&' (ids are `A-Z a-z 0-9 - . _ ~`), so splitting from
    // the right keeps any oddity in the id where validation will catch it.
    let mut parts = body.rsplitn(3, '&');
    let (Some(signature), Some(expiry), Some(gateway_id)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected <id>&<expiry>&<signature>"));
    };
    if gateway_id.is_empty() {
        return Err(TokenError::Malformed("empty gateway id"));
    }
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed("expiry is not a number of seconds"));
    }
    let expiry_unix = expiry
        .parse()
        .map_err(|_| TokenError::Malformed("expiry out of range"))?;
    let signature =
        base64_decode(signature, true).ok_or(TokenError::Malformed("signature is not base64"))?;
    Ok(ParsedToken {
        gateway_id,
        expiry_unix,
        signature,
    })
}

impl ParsedToken<'_> {
    /// Checks the expiry against `now_unix` and the signature against each key, in
    /// constant time per key.
    pub fn verify(&self, keys: &[&[u8]], now_unix: u64) -> Result<(), TokenError> {
        if self.expiry_unix <= now_unix {
            return Err(TokenError::Expired);
        }
        let mut message = Vec::with_capacity(self.gateway_id.len() + 21);
        message.extend_from_slice(self.gateway_id.as_bytes());
        message.push(b'\n');
        message.extend_from_slice(self.expiry_unix.to_string().as_bytes());
        let mut ok = false;
        for key in keys {
            let key = hmac::Key::new(hmac::HMAC_SHA256, key);
            // Every key is tried, so timing does not tell which one matched.
            ok |= hmac::verify(&key, &message, &self.signature).is_ok();
        }
        if ok {
            Ok(())
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn signed_token_verifies_with_either_key() {
        let token = sign("gw-1", NOW + 60, b"primary");
        assert!(token.starts_with("GatewayKey gw-1&1800000060&"));
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.gateway_id, "gw-1");
        assert_eq!(parsed.expiry_unix, NOW + 60);
        assert_eq!(parsed.verify(&[b"secondary", b"primary"], NOW), Ok(()));
        // Without the scheme prefix too.
        let bare = token.trim_start_matches("GatewayKey ");
        assert_eq!(parse(bare).unwrap().verify(&[b"primary"], NOW), Ok(()));
    }

    #[test]
    fn expired_forged_and_rotated_tokens_are_refused() {
        let token = sign("gw-1", NOW + 60, b"primary");
        let parsed = parse(&token).unwrap();
        assert_eq!(
            parsed.verify(&[b"primary"], NOW + 60),
            Err(TokenError::Expired)
        );
        assert_eq!(
            parsed.verify(&[b"regenerated"], NOW),
            Err(TokenError::BadSignature)
        );
        // Another id or expiry with the same signature is a forgery.
        let sig = token.rsplit('&').next().unwrap();
        let forged = format!("GatewayKey gw-2&{}&{sig}", NOW + 60);
        assert_eq!(
            parse(&forged).unwrap().verify(&[b"primary"], NOW),
            Err(TokenError::BadSignature)
        );
        let extended = format!("GatewayKey gw-1&{}&{sig}", NOW + 10_000);
        assert_eq!(
            parse(&extended).unwrap().verify(&[b"primary"], NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "GatewayKey",
            "Bearer gw&1&AAAA",
            "GatewayKey gw&1",
            "GatewayKey &1&AAAA",
            "GatewayKey gw&-1&AAAA",
            "GatewayKey gw&99999999999999999999999&AAAA",
            "GatewayKey gw&1&not base64!",
        ] {
            assert!(
                matches!(parse(bad), Err(TokenError::Malformed(_))),
                "{bad:?} accepted"
            );
        }
    }
}
