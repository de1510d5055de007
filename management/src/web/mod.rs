//! What the admin console and the developer portal share as web sites: cookies,
//! CSRF checks, security headers, embedded assets and failed sign-in throttling.

pub(crate) mod assets;
pub(crate) mod cookie;
pub(crate) mod csrf;
pub(crate) mod headers;
pub(crate) mod throttle;
