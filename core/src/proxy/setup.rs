//! Setting up a gateway's proxy, the same on every runtime: the policies' time
//! anchor, and which OpenID configuration URLs the key set refresher must
//! follow. The driver binds, spawns and reads the clocks.

use std::time::{SystemTime, UNIX_EPOCH};

use super::settings::ConfigSource;

/// Milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn unix_millis(wall: SystemTime) -> i64 {
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Follows the configuration in force for the key set refresher: the OpenID
/// configuration URLs, once per new revision.
#[derive(Debug, Default)]
pub struct OpenIdUrls {
    seen: Option<u64>,
}

impl OpenIdUrls {
    /// The URLs of the configuration in force if its revision is new since the
    /// last call; `None` when nothing changed (or nothing is loaded yet).
    pub fn poll_changed(&mut self, config: &dyn ConfigSource) -> Option<Vec<String>> {
        let current = config.current()?;
        if self.seen == Some(current.revision()) {
            return None;
        }
        self.seen = Some(current.revision());
        Some(current.openid_urls())
    }
}
