//! CSRF tokens: compared without an early exit, and the double-submit cookie
//! that protects forms shown before there is a session (sign-in, sign-up): a
//! random token both in a cookie and in a hidden field; a cross-site page can
//! make a browser send the cookie but cannot read it to fill in the field.

use axum::http::{HeaderMap, HeaderValue};

use super::cookie;
use crate::store::{random_token, StoreError};

/// Where an anonymous form's double-submit cookie lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormCookie {
    /// The cookie's name.
    pub name: &'static str,
    /// The path it is sent to.
    pub path: &'static str,
    /// How long a form stays usable, seconds.
    pub ttl_secs: u64,
}

impl FormCookie {
    /// The request's token if its cookie holds a well-formed one, else a new one
    /// and the `Set-Cookie` value that stores it.
    pub(crate) fn token(
        &self,
        headers: &HeaderMap,
        secure: bool,
    ) -> Result<(String, Option<HeaderValue>), StoreError> {
        if let Some(existing) = cookie::read(headers, self.name).filter(|t| well_formed(t)) {
            return Ok((existing, None));
        }
        let (token, set) = self.fresh(secure)?;
        Ok((token, Some(set)))
    }

    /// A new token and the `Set-Cookie` value that stores it.
    pub(crate) fn fresh(&self, secure: bool) -> Result<(String, HeaderValue), StoreError> {
        let token = random_token()?;
        let set = cookie::set(self.name, &token, self.path, self.ttl_secs, secure);
        Ok((token, set))
    }

    /// Whether the form's field `given` equals the token in the request's cookie.
    pub(crate) fn matches(&self, headers: &HeaderMap, given: &str) -> bool {
        cookie::read(headers, self.name)
            .is_some_and(|expected| well_formed(&expected) && matches(&expected, given))
    }

    /// The `Set-Cookie` value that deletes the cookie (once the form is used).
    pub(crate) fn clear(&self, secure: bool) -> HeaderValue {
        cookie::clear(self.name, self.path, secure)
    }
}

/// 64 lowercase hex digits, as [`random_token`] makes them.
fn well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `given` equals the `expected` token; an empty expected token never matches.
pub(crate) fn matches(expected: &str, given: &str) -> bool {
    if expected.is_empty() || expected.len() != given.len() {
        return false;
    }
    expected
        .bytes()
        .zip(given.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_cookie_matches_only_its_own_well_formed_token() {
        use axum::http::header::COOKIE;
        let form = FormCookie {
            name: "f",
            path: "/p",
            ttl_secs: 60,
        };
        let (token, set) = form.fresh(true).unwrap();
        assert!(set
            .to_str()
            .unwrap()
            .starts_with(&format!("f={token}; Path=/p")));
        let mut headers = HeaderMap::new();
        assert!(!form.matches(&headers, &token), "no cookie");
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("f={token}")).unwrap(),
        );
        assert!(form.matches(&headers, &token));
        assert!(!form.matches(&headers, ""));
        // The request's good token is reused, not replaced.
        assert_eq!(form.token(&headers, true).unwrap(), (token, None));
        headers.insert(COOKIE, HeaderValue::from_static("f=short"));
        assert!(!form.matches(&headers, "short"), "not one of ours");
        assert!(form.token(&headers, true).unwrap().1.is_some());
    }

    #[test]
    fn only_the_same_token_matches() {
        assert!(matches("abc123", "abc123"));
        assert!(!matches("abc123", "abc124"));
        assert!(!matches("abc123", "abc12"));
        assert!(!matches("", ""));
    }
}
