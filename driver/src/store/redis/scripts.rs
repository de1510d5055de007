//! The Lua scripts the Redis store runs, with their SHA-1 (`EVALSHA`).

use std::sync::OnceLock;

/// A script's text and the SHA-1 Redis knows it by.
pub struct Script {
    /// The Lua source.
    pub body: &'static str,
    /// Lowercase hex SHA-1 of `body`.
    pub sha: String,
}

impl Script {
    fn new(body: &'static str) -> Script {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, body.as_bytes());
        let sha = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Script { body, sha }
    }
}

macro_rules! script {
    ($name:ident, $file:literal) => {
        #[doc = concat!("`", $file, "`.")]
        pub fn $name() -> &'static Script {
            static S: OnceLock<Script> = OnceLock::new();
            S.get_or_init(|| Script::new(include_str!($file)))
        }
    };
}

script!(rate, "scripts/rate.lua");
script!(quota, "scripts/quota.lua");
script!(acquire, "scripts/acquire.lua");
script!(cache_get, "scripts/cache_get.lua");
