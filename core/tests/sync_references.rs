//! A snapshot whose policy names a backend it does not carry (from an older
//! management plane, say) is a compile error for the sync agent: kept out, the
//! configuration in force stays, and the heartbeat reports why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bytes::Bytes;
use portcullis_core::sync::*;

fn snapshot(revision: u64, backend_id: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"revision": {revision},
            "apis": [{{"id": "a", "path": "a", "serviceUrl": "http://127.0.0.1:9/",
                       "policy": "<policies>\n<inbound>\n<set-backend-service backend-id=\"{backend_id}\" />\n</inbound>\n</policies>"}}],
            "backends": [{{"id": "b1", "url": "http://127.0.0.1:10/"}}]}}"#
    ))
}

fn drain(agent: &mut SyncAgent) -> Vec<Output> {
    std::iter::from_fn(|| agent.poll_output()).collect()
}

#[test]
fn a_snapshot_naming_a_missing_backend_is_kept_out_and_reported() {
    let now = Instant::now();
    let mut agent = SyncAgent::new(SyncSettings::new("instance-1", "host-1"), 1, now);
    drain(&mut agent);
    agent.handle_fetch(FetchResult::Snapshot(snapshot(1, "b1")), now);
    let out = drain(&mut agent);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Apply(c) if c.revision() == 1)),
        "{out:?}"
    );
    agent.handle_heartbeat_done(Ok(()), now);

    agent.handle_fetch(FetchResult::Snapshot(snapshot(2, "ghost")), now);
    let out = drain(&mut agent);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Apply(_))),
        "{out:?}"
    );
    assert_eq!(agent.applied_revision(), Some(1));
    let errors: Vec<&String> = out
        .iter()
        .filter_map(|o| match o {
            Output::Heartbeat(h) => Some(&h.compile_errors),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(errors[0].starts_with("revision 2: "), "{errors:?}");
    assert!(
        errors[0].contains("line 3") && errors[0].contains("backend 'ghost' does not exist"),
        "{errors:?}"
    );
}
