//! The telemetry buffer's sealed batch files
//! (`portcullis_core::telemetry::buffer_file`), read as a restarted gateway
//! reads them (`pump::restore_batches`, then `Uploader::restore`).
//!
//! Input: `[mode, index, bytes...]`.
//!
//! - Mode bit 0 clear: the bytes are the file of batch `index`. Restoring it
//!   never panics: it is refused (and set aside) or its JSON goes to the
//!   uploader. The rare file that opens must seal back, under the same key,
//!   number and nonce, to exactly the same bytes.
//! - Mode bit 0 set: the bytes are a batch JSON sealed as batch `index`, which
//!   must open to the same plaintext. Then the file is damaged as mode bits 1-2
//!   say (flip the byte at `index`, scaled over the file, by `mode | 1`;
//!   truncate to `index` scaled; open it under another batch number; open under
//!   another key) and must be refused: a flip is `Damaged`, `NotSealed` or
//!   `UnsupportedVersion`; a truncation is `Damaged`; another number is
//!   `WrongBatch`; another key is `Authentication`.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use portcullis_core::sync::BackupKey;
use portcullis_core::telemetry::buffer_file::{open, BatchFileError, BatchKey, BatchSealer};
use portcullis_driver::telemetry::pump::{batch_file_name, rejected_name, restore_batches};
use portcullis_core::telemetry::uploader::{UploadSettings, Uploader};

fn scaled(index: u8, len: usize) -> usize {
    usize::from(index) * len / 256
}

fuzz_target!(|data: &[u8]| {
    let [mode, index, rest @ ..] = data else {
        return;
    };
    let key = BatchKey::derive(&BackupKey::from_bytes([0x42; 32]));
    let seq = u64::from(*index);
    if mode & 1 == 0 {
        let name = batch_file_name(seq);
        let aside = RefCell::new(Vec::new());
        let found = restore_batches(
            vec![name.clone()],
            &key,
            |_| Ok(rest.to_vec()),
            |_| panic!("only temporary files are removed"),
            |from, to| {
                aside.borrow_mut().push((from.to_owned(), to.to_owned()));
                Ok(())
            },
        );
        match open(rest, seq, &key) {
            Ok(json) => {
                assert_eq!(found.len(), 1);
                assert_eq!(found[0].1.as_ref(), json.as_slice());
                assert!(aside.borrow().is_empty());
                let nonce: [u8; 12] = rest[17..29].try_into().expect("header nonce");
                let again = BatchSealer::new(key.clone(), nonce)
                    .seal(seq, &json)
                    .expect("seal what opened");
                assert_eq!(again, rest, "an opened file seals back to itself");
                let mut uploader = Uploader::new("fuzz", UploadSettings::default(), 0);
                uploader.restore(found);
                while uploader.poll_output().is_some() {}
            }
            Err(BatchFileError::TooLarge) => panic!("opening never says too large"),
            Err(_) => {
                assert!(found.is_empty(), "a refused file is not uploaded");
                assert_eq!(*aside.borrow(), [(name.clone(), rejected_name(&name))]);
            }
        }
        return;
    }

    let nonce = [*mode; 12];
    let file = BatchSealer::new(key.clone(), nonce)
        .seal(seq, rest)
        .expect("seal");
    assert_eq!(open(&file, seq, &key).expect("a sealed file opens"), rest);
    match (mode >> 1) & 3 {
        0 => {
            let mut bad = file.clone();
            let at = scaled(*index, bad.len());
            bad[at] ^= *mode | 1;
            let err = open(&bad, seq, &key).expect_err("a flipped byte is detected");
            assert!(
                matches!(
                    err,
                    BatchFileError::Damaged(_)
                        | BatchFileError::NotSealed
                        | BatchFileError::UnsupportedVersion(_)
                ),
                "flip at {at}: {err:?}"
            );
        }
        1 => {
            let cut = scaled(*index, file.len());
            let err = open(&file[..cut], seq, &key).expect_err("a truncation is detected");
            assert!(
                matches!(err, BatchFileError::Damaged(_)),
                "cut at {cut}: {err:?}"
            );
        }
        2 => {
            let other = seq.wrapping_add(1 + u64::from(*mode));
            assert_eq!(
                open(&file, other, &key),
                Err(BatchFileError::WrongBatch {
                    named: other,
                    sealed: seq
                })
            );
        }
        _ => {
            let other = BatchKey::derive(&BackupKey::from_bytes([*index ^ 0x43 | 1; 32]));
            assert_eq!(
                open(&file, seq, &other),
                Err(BatchFileError::Authentication)
            );
        }
    }
});
