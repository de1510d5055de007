//! CSRF tokens of portal forms: the session's token once signed in, a
//! double-submit cookie on the anonymous sign-in and sign-up forms.

use axum::http::{HeaderMap, HeaderValue};

use super::form::Form;
use super::session::{SignedIn, COOKIE_PATH};
use crate::store::StoreError;
use crate::web::csrf;

/// The form field every portal form carries its token in.
pub const FIELD: &str = "csrf";

/// The double-submit cookie of the anonymous forms (it lives a day: it only
/// guards sign-in and sign-up).
const ANONYMOUS: csrf::FormCookie = csrf::FormCookie {
    name: "portcullis_portal_csrf",
    path: COOKIE_PATH,
    ttl_secs: 24 * 3600,
};

/// Whether a signed-in form carries the session's token.
pub fn session_ok(signed: &SignedIn, form: &Form) -> bool {
    let given = form.get(FIELD);
    !given.is_empty() && csrf::matches(&signed.csrf, given)
}

/// Whether an anonymous form carries the same token as its cookie.
pub fn anonymous_ok(headers: &HeaderMap, form: &Form) -> bool {
    ANONYMOUS.matches(headers, form.get(FIELD))
}

/// The token for an anonymous form: the request's cookie if it has a good one,
/// else a new one and the `Set-Cookie` value that stores it.
pub fn anonymous_token(
    headers: &HeaderMap,
    secure: bool,
) -> Result<(String, Option<HeaderValue>), StoreError> {
    ANONYMOUS.token(headers, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(cookie).unwrap(),
        );
        h
    }

    #[test]
    fn anonymous_tokens_must_match_their_cookie() {
        let token = "a".repeat(64);
        let h = headers(&format!("{}={token}", ANONYMOUS.name));
        assert!(anonymous_ok(
            &h,
            &Form::parse(format!("csrf={token}").as_bytes())
        ));
        assert!(!anonymous_ok(&h, &Form::parse(b"csrf=")));
        assert!(!anonymous_ok(&h, &Form::parse(b"other=1")));
        assert!(!anonymous_ok(
            &h,
            &Form::parse(format!("csrf={}", "b".repeat(64)).as_bytes())
        ));
        assert!(!anonymous_ok(
            &HeaderMap::new(),
            &Form::parse(format!("csrf={token}").as_bytes())
        ));
        // A planted short cookie with the same value in the form is refused.
        let weak = headers(&format!("{}=x", ANONYMOUS.name));
        assert!(!anonymous_ok(&weak, &Form::parse(b"csrf=x")));
    }

    #[test]
    fn anonymous_token_reuses_a_good_cookie() {
        let token = "0123456789abcdef".repeat(4);
        let (t, set) =
            anonymous_token(&headers(&format!("{}={token}", ANONYMOUS.name)), false).unwrap();
        assert_eq!(t, token);
        assert!(set.is_none());
        let (fresh, set) = anonymous_token(&HeaderMap::new(), false).unwrap();
        assert_eq!(fresh.len(), 64);
        let set = set.unwrap();
        assert!(set.to_str().unwrap().contains(&fresh));
    }
}
