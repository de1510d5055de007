//! The console's static files, embedded in the binary (public: they hold no data).

use axum::extract::Path;
use axum::response::Response;

use crate::http::Problem;
use crate::web;

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file under `/admin/assets/`, by path.
const FILES: &[(&str, &[u8], &str)] = &[
    (
        "admin.css",
        include_bytes!("../../assets/admin/admin.css"),
        CSS,
    ),
    ("app.js", include_bytes!("../../assets/admin/app.js"), JS),
    ("api.js", include_bytes!("../../assets/admin/api.js"), JS),
    (
        "chart.js",
        include_bytes!("../../assets/admin/chart.js"),
        JS,
    ),
    ("dom.js", include_bytes!("../../assets/admin/dom.js"), JS),
    (
        "policy_editor.js",
        include_bytes!("../../assets/admin/policy_editor.js"),
        JS,
    ),
    (
        "router.js",
        include_bytes!("../../assets/admin/router.js"),
        JS,
    ),
    (
        "views/apis.js",
        include_bytes!("../../assets/admin/views/apis.js"),
        JS,
    ),
    (
        "views/versions.js",
        include_bytes!("../../assets/admin/views/versions.js"),
        JS,
    ),
    (
        "views/dashboard.js",
        include_bytes!("../../assets/admin/views/dashboard.js"),
        JS,
    ),
    (
        "views/gateways.js",
        include_bytes!("../../assets/admin/views/gateways.js"),
        JS,
    ),
    (
        "views/named_values.js",
        include_bytes!("../../assets/admin/views/named_values.js"),
        JS,
    ),
    (
        "views/products.js",
        include_bytes!("../../assets/admin/views/products.js"),
        JS,
    ),
    (
        "views/subscriptions.js",
        include_bytes!("../../assets/admin/views/subscriptions.js"),
        JS,
    ),
    (
        "views/users.js",
        include_bytes!("../../assets/admin/views/users.js"),
        JS,
    ),
];

/// `GET /admin/assets/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Result<Response, Problem> {
    FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, body, content_type)| web::assets::asset(body, content_type))
        .ok_or_else(|| Problem::no_route(&format!("/admin/assets/{file}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a script imports is served (a missing one breaks the app).
    #[test]
    fn every_import_is_served() {
        for (name, body, _) in FILES.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(body).expect("utf-8");
            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line
                    .rsplit_once(" from \"")
                    .and_then(|(_, s)| s.strip_suffix("\";"))
                    .unwrap_or_else(|| panic!("{name}: cannot read `{line}`"));
                let mut parts: Vec<&str> = if dir.is_empty() { vec![] } else { vec![dir] };
                for segment in spec.split('/') {
                    match segment {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    FILES.iter().any(|(n, _, _)| *n == target),
                    "{name} imports {spec} ({target}), which is not served"
                );
            }
        }
    }

    /// No inline script or style: the pages' CSP forbids them.
    #[test]
    fn no_inline_script_or_style() {
        for page in [
            include_str!("../../assets/admin/shell.html"),
            include_str!("../../assets/admin/login.html"),
        ] {
            assert!(!page.contains("style="), "inline style");
            assert!(!page.contains("<style"), "style element");
            for script in page.split("<script").skip(1) {
                assert!(
                    script.trim_start().starts_with("type=\"module\" src="),
                    "inline script"
                );
            }
        }
    }
}
