//! The content identity of a snapshot: the store it came from, its revision and
//! a digest of what it holds.
//!
//! A revision number alone does not identify content: a management database
//! restored from an older copy and changed again can reach the revision a
//! gateway holds with other content. The management plane stamps every snapshot
//! with its store's identity and a SHA-256 digest, the ETag carries both
//! revision and digest, and the gateway asks "is `<revision>-<digest>` still
//! current?", so any difference in content is answered with the full snapshot.

use ring::digest::{digest, SHA256};

use crate::config::Snapshot;

/// What identifies the content of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentId {
    /// The store's revision.
    pub revision: u64,
    /// The store's identity, when the snapshot carries one.
    pub store_id: Option<String>,
    /// SHA-256 (hex) of the snapshot without its digest, when it carries one.
    pub digest: Option<String>,
}

impl ContentId {
    /// The identity a snapshot carries (as stamped by the management plane).
    pub fn of(snapshot: &Snapshot) -> ContentId {
        ContentId {
            revision: snapshot.revision,
            store_id: snapshot.store_id.clone(),
            digest: snapshot.digest.clone(),
        }
    }

    /// The entity tag, quotes included: `"<revision>-<digest>"`, or
    /// `"<revision>"` for a snapshot without a digest.
    pub fn etag(&self) -> String {
        match &self.digest {
            Some(digest) => format!("\"{}-{digest}\"", self.revision),
            None => format!("\"{}\"", self.revision),
        }
    }
}

/// SHA-256 (lowercase hex) of the snapshot's JSON with its `digest` left out;
/// everything else (revision and store identity included) is covered.
pub fn digest_of(snapshot: &Snapshot) -> String {
    let json = if snapshot.digest.is_some() {
        let mut bare = snapshot.clone();
        bare.digest = None;
        bare.to_json()
    } else {
        snapshot.to_json()
    };
    hex(digest(&SHA256, &json).as_ref())
}

/// Sets the snapshot's store identity and then its digest: what the management
/// plane does to every snapshot it sends.
pub fn stamp(snapshot: &mut Snapshot, store_id: &str) {
    snapshot.store_id = Some(store_id.to_owned());
    snapshot.digest = None;
    snapshot.digest = Some(digest_of(snapshot));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(revision: u64, policy: Option<&str>) -> Snapshot {
        let mut s = Snapshot::from_json(br#"{"revision":1}"#).expect("snapshot");
        s.revision = revision;
        s.policy = policy.map(str::to_owned);
        s
    }

    #[test]
    fn the_digest_covers_content_revision_and_store_but_not_itself() {
        let mut a = snapshot(7, Some("<policies/>"));
        stamp(&mut a, "store-1");
        let digest = a.digest.clone().expect("stamped");
        assert_eq!(digest.len(), 64);
        assert_eq!(
            digest_of(&a),
            digest,
            "recomputing ignores the digest field"
        );

        let mut other_content = snapshot(7, None);
        stamp(&mut other_content, "store-1");
        assert_ne!(other_content.digest, a.digest);
        let mut other_store = snapshot(7, Some("<policies/>"));
        stamp(&mut other_store, "store-2");
        assert_ne!(other_store.digest, a.digest);
        let mut other_revision = snapshot(8, Some("<policies/>"));
        stamp(&mut other_revision, "store-1");
        assert_ne!(other_revision.digest, a.digest);
    }

    #[test]
    fn a_stamped_snapshot_round_trips_with_its_identity() {
        let mut a = snapshot(3, None);
        stamp(&mut a, "s");
        let back = Snapshot::from_json(&a.to_json()).expect("parses");
        assert_eq!(ContentId::of(&back), ContentId::of(&a));
        assert_eq!(digest_of(&back), a.digest.clone().expect("digest"));
    }

    #[test]
    fn etags_name_revision_and_digest() {
        let bare = ContentId::of(&snapshot(4, None));
        assert_eq!(bare.etag(), "\"4\"");
        let mut s = snapshot(4, None);
        stamp(&mut s, "s");
        let id = ContentId::of(&s);
        assert_eq!(id.etag(), format!("\"4-{}\"", s.digest.expect("digest")));
    }
}
