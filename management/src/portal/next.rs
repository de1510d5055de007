//! Where to go after signing in: only a path inside the portal, never another site.

/// Where a visitor lands when `next` is absent or not acceptable.
pub const HOME: &str = "/portal";

/// `next` if it is a path inside the portal (`/portal`, `/portal/...`,
/// `/portal?...`), else [`HOME`]. Anything a browser could read as another origin
/// (`//host`, `/\host`, a scheme) or that hides characters is refused.
pub fn sanitize(next: Option<&str>) -> &str {
    let Some(next) = next else {
        return HOME;
    };
    let inside = next == HOME
        || next.starts_with("/portal/")
        || next.starts_with("/portal?")
        || next.starts_with("/portal#");
    let plain = next.len() <= 2048
        && !next.contains("//")
        && !next.contains('\\')
        && !next.contains("/../")
        && !next.ends_with("/..")
        && next.chars().all(|c| c.is_ascii_graphic());
    if inside && plain {
        next
    } else {
        HOME
    }
}

/// The sign-in page that comes back to `target` afterwards.
pub fn signin_url(target: &str) -> String {
    let target = sanitize(Some(target));
    if target == HOME {
        return "/portal/signin".to_owned();
    }
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", target)
        .finish();
    format!("/portal/signin?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_portal_paths() {
        for ok in [
            "/portal",
            "/portal/apis/echo",
            "/portal/products?x=1",
            "/portal?q=pets",
        ] {
            assert_eq!(sanitize(Some(ok)), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "https://evil.example/portal",
            "//evil.example/portal",
            "/portal//evil.example",
            "/\\evil.example",
            "/portal\\..\\admin",
            "/admin",
            "/portalx",
            "/portal/../admin",
            "/portal/..",
            "portal",
            "",
            "/portal/a b",
            "/portal/\u{0}",
            "javascript:alert(1)",
        ] {
            assert_eq!(sanitize(Some(bad)), HOME, "{bad:?}");
        }
        assert_eq!(sanitize(None), HOME);
    }

    #[test]
    fn signin_url_carries_next_encoded() {
        assert_eq!(signin_url("/portal"), "/portal/signin");
        assert_eq!(
            signin_url("/portal/apis/echo?x=1&y=2"),
            "/portal/signin?next=%2Fportal%2Fapis%2Fecho%3Fx%3D1%26y%3D2"
        );
        assert_eq!(signin_url("https://evil.example"), "/portal/signin");
    }
}
