//! The configuration backup file (`portcullis_core::sync::backup`).
//!
//! Input: `[mode, index, bytes...]`.
//!
//! - Mode bit 0 clear: the bytes are a backup file. Opening it never panics; the
//!   error (if any) is one of the decoding variants. The rare input that opens
//!   must seal back, under the same key, revision and nonce, to exactly the same
//!   bytes.
//! - Mode bit 0 set: the bytes are a snapshot JSON sealed into a file, which must
//!   open to the same revision and plaintext. Then the file is damaged as mode bits
//!   1-2 say (flip the byte at `index`, scaled over the file, by `mode | 1`;
//!   truncate to `index` scaled; append a byte; open under another key) and must
//!   not open: a flip or truncation is `Truncated`, `TrailingBytes`,
//!   `ChecksumMismatch`, `BadMagic`, `UnsupportedVersion` or `Unbound`; another key is
//!   `Authentication`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::sync::backup::{
    open, open_snapshot, seal, BackupError, Binding, BOUND_HEADER_MIN,
};
use portcullis_core::sync::BackupKey;

/// The gateway the files belong to.
const GW: &str = "gw-1";

fn scaled(index: u8, len: usize) -> usize {
    usize::from(index) * len / 256
}

fuzz_target!(|data: &[u8]| {
    let [mode, index, rest @ ..] = data else {
        return;
    };
    let key = BackupKey::from_bytes([0x42; 32]);
    if mode & 1 == 0 {
        match open(rest, &key, GW) {
            Ok(opened) => {
                let nonce: [u8; 12] = rest[17..29].try_into().expect("header nonce");
                let again = seal(
                    opened.revision,
                    &opened.snapshot_json,
                    &opened.binding,
                    &key,
                    nonce,
                )
                .expect("seal what opened");
                assert_eq!(again, rest, "an opened file seals back to itself");
                let _ = open_snapshot(rest, &key, GW);
            }
            Err(
                BackupError::BadMagic
                | BackupError::UnsupportedVersion(_)
                | BackupError::Unbound
                | BackupError::OtherGateway { .. }
                | BackupError::Truncated { .. }
                | BackupError::TrailingBytes { .. }
                | BackupError::ChecksumMismatch
                | BackupError::Authentication,
            ) => {}
            Err(other) => panic!("unexpected decoding error {other:?}"),
        }
        return;
    }

    let revision = u64::from(*index) << 8 | u64::from(*mode);
    let nonce = [*index; 12];
    let binding = Binding {
        gateway_id: GW.into(),
        store_id: String::new(),
        signature: String::new(),
        signing_key: None,
    };
    let header_len = BOUND_HEADER_MIN + GW.len();
    let file = seal(revision, rest, &binding, &key, nonce).expect("seal");
    let opened = open(&file, &key, GW).expect("a sealed file opens");
    assert_eq!(opened.revision, revision);
    assert_eq!(opened.snapshot_json, rest);

    let damaged_kind = |err: BackupError| {
        matches!(
            err,
            BackupError::Truncated { .. }
                | BackupError::TrailingBytes { .. }
                | BackupError::ChecksumMismatch
                | BackupError::BadMagic
                | BackupError::UnsupportedVersion(_)
                | BackupError::Unbound
        )
    };
    match (mode >> 1) & 3 {
        0 => {
            let mut bad = file.clone();
            let at = scaled(*index, bad.len());
            bad[at] ^= *mode | 1;
            let err = open(&bad, &key, GW).expect_err("a flipped byte is detected");
            assert!(damaged_kind(err.clone()), "flip at {at}: {err:?}");
            if at >= header_len {
                assert_eq!(err, BackupError::ChecksumMismatch, "flip at {at}");
            }
        }
        1 => {
            let cut = scaled(*index, file.len());
            let err = open(&file[..cut], &key, GW).expect_err("a truncation is detected");
            assert!(
                matches!(err, BackupError::Truncated { .. }),
                "cut at {cut}: {err:?}"
            );
        }
        2 => {
            let mut longer = file.clone();
            longer.push(*index);
            let err = open(&longer, &key, GW).expect_err("an extra byte is detected");
            assert!(damaged_kind(err.clone()), "{err:?}");
        }
        _ => {
            let other = BackupKey::from_bytes([*index ^ 0x43 | 1; 32]);
            assert_eq!(open(&file, &other, GW), Err(BackupError::Authentication));
        }
    }
});
