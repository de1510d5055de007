//! Renewed certificate files are served without a restart: the files are
//! read every reload interval, and a changed set that loads replaces the
//! served one from the next handshake on (open connections keep theirs). A set
//! that does not load is logged once and the certificates in force stay.
//! `Gateway::reload` (SIGHUP) has them read at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::nudge::Nudged;
use crate::options::CertificateFiles;
use crate::runtime::{until_stopped, Runtime};
use crate::stop::Stop;

use super::certs::{CertError, CertResolver, CertSet, ServedCert};
use super::provider;

/// The bytes of every certificate and key file, in order.
pub type CertFilesContent = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads every file (blocking IO).
pub fn read_files(files: &[CertificateFiles]) -> Result<CertFilesContent, CertError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| CertError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    files
        .iter()
        .map(|f| Ok((read(&f.cert)?, read(&f.key)?)))
        .collect()
}

/// Parses what [`read_files`] read.
pub fn parse(
    files: &[CertificateFiles],
    content: &CertFilesContent,
) -> Result<Vec<ServedCert>, CertError> {
    let provider = provider();
    files
        .iter()
        .zip(content)
        .map(|(f, (cert, key))| ServedCert::from_pem((&f.cert, cert), (&f.key, key), &provider))
        .collect()
}

/// Checks `files` every `interval`, and at once when `nudged` (SIGHUP), until
/// `stop`; `loaded` is what the served set came from.
pub async fn watch_certificates<R: Runtime>(
    rt: R,
    files: Vec<CertificateFiles>,
    mut loaded: CertFilesContent,
    resolver: Arc<CertResolver>,
    interval: Duration,
    nudged: Nudged,
    stop: Stop,
) {
    let files = Arc::new(files);
    // The last content refused, so a bad renewal is logged once.
    let mut refused: Option<CertFilesContent> = None;
    loop {
        let woke = futures_lite::future::or(
            async {
                crate::runtime::sleep(&rt, interval).await;
                false
            },
            async {
                nudged.recv().await;
                true
            },
        );
        let Some(was_nudged) = until_stopped(&stop, woke).await else {
            return;
        };
        if was_nudged {
            tracing::info!(
                certificates = files.len(),
                "reading the TLS certificate files again (SIGHUP)"
            );
        }
        let read = {
            let files = files.clone();
            rt.blocking(move || read_files(&files)).await
        };
        // A file half-written or briefly missing during a renewal: next time.
        let Ok(Ok(content)) = read else { continue };
        if content == loaded || refused.as_ref() == Some(&content) {
            continue;
        }
        let parsed = {
            let (files, content) = (files.clone(), content.clone());
            rt.blocking(move || parse(&files, &content)).await
        };
        match parsed {
            Ok(Ok(certs)) => {
                resolver.replace(CertSet::new(&certs));
                tracing::info!(
                    certificates = certs.len(),
                    "serving renewed TLS certificates"
                );
                loaded = content;
                refused = None;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "renewed TLS certificates refused; the ones in force stay");
                refused = Some(content);
            }
            Err(e) => tracing::warn!(error = %e, "loading renewed TLS certificates failed"),
        }
    }
}
