//! An API's versions on its portal page: one entry per version of its version
//! set, as APIM's portal shows them, and how a request names this version.

use maud::{html, Markup};
use portcullis_core::config::VersioningScheme;

use super::api_page::ApiContext;
use super::catalog::api_href;

/// The path clients call the API at: with the Segment scheme, the version
/// segment after the API's path.
pub fn call_path(ctx: &ApiContext) -> String {
    let path = ctx.api.normalized_path();
    let version = ctx.api.api_version.as_deref().unwrap_or("");
    match &ctx.versions {
        Some((set, _))
            if set.versioning_scheme == VersioningScheme::Segment && !version.is_empty() =>
        {
            if path.is_empty() {
                version.to_owned()
            } else {
                format!("{path}/{version}")
            }
        }
        _ => path.to_owned(),
    }
}

/// The version picker: every version of the set, this one marked, and how a
/// request names it. Empty for an API without a version set.
pub fn picker(ctx: &ApiContext) -> Markup {
    let Some((set, versions)) = &ctx.versions else {
        return html! {};
    };
    let this = ctx.api.api_version.as_deref().unwrap_or("");
    let label = |v: &str| {
        if v.is_empty() {
            "Original".to_owned()
        } else {
            v.to_owned()
        }
    };
    let default = set.default_version.as_deref();
    html! {
        section.versions aria-labelledby="versions-heading" {
            h2 #versions-heading { "Versions" }
            nav aria-label="Versions" {
                ul.plain.version-list {
                    @for (id, version) in versions {
                        li {
                            @if *id == ctx.api.id {
                                strong aria-current="page" { (label(version)) }
                            } @else {
                                a href=(api_href(id)) { (label(version)) }
                            }
                            @if default == Some(version.as_str()) || (default.is_none() && version.is_empty()) {
                                " " span.badge { "default" }
                            }
                        }
                    }
                }
            }
            p {
                @match set.versioning_scheme {
                    VersioningScheme::Segment => {
                        "Name the version in the path: " code { "/" (call_path(ctx)) "/…" }
                    }
                    VersioningScheme::Header => {
                        "Name the version in the " code { (set.version_header_name.as_deref().unwrap_or("")) }
                        " header: " code { (set.version_header_name.as_deref().unwrap_or("")) ": " (this) }
                    }
                    VersioningScheme::Query => {
                        "Name the version in the query: " code { "?" (set.version_query_name.as_deref().unwrap_or("")) "=" (this) }
                    }
                }
                @if this.is_empty() || default == Some(this) { " (requests that name no version reach this one)" }
                "."
            }
        }
    }
}
