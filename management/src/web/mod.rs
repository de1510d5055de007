//! What the admin console and the developer portal share as web sites: cookies,
//! CSRF checks, security headers and embedded assets.

pub(crate) mod assets;
pub(crate) mod cookie;
pub(crate) mod csrf;
pub(crate) mod headers;
