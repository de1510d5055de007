//! A gateway host: the real gateway (`portcullis-driver`, all the code either
//! runtime runs) in connected mode, on the simulation's runtime (turmoil's
//! network and disk), with a probe recording each revision it
//! puts in force. Its request records are uploaded to the management plane.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_driver::api::{
    BackupKey, BackupOptions, GatewayOptions, ManagedOptions, SyncTiming,
};
use portcullis_driver::{Gateway, Sabotage, BACKUP_FILE_NAME};
use turmoil::fs::shim::std::fs as simfs;

use super::{gateway_host, SimNet, GATEWAY_PORT, MANAGEMENT, MANAGEMENT_PORT};
use crate::runtime::SimRuntime;
use crate::trace::{Event, Trace};

/// The backup directory on the gateway's simulated disk.
pub const BACKUP_DIR: &str = "/var/lib/portcullis";

/// How often the probe looks at the revision in force.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// What a gateway host needs across its restarts.
#[derive(Debug)]
pub struct GatewayHost {
    pub gw: usize,
    pub token: String,
    pub backup: bool,
    pub seed: u64,
    pub trace: Trace,
    pub net: SimNet,
    pub timing: SyncTiming,
    pub sabotage: Sabotage,
    /// The telemetry upload buffer's bound.
    pub buffer_bytes: u64,
    /// Set by the driver while the host is down: damage the backup before the
    /// next start.
    pub corrupt_next_start: AtomicBool,
    /// Backups damaged so far (the kind of damage alternates).
    pub damages: AtomicU64,
    pub starts: AtomicU64,
}

/// Runs the gateway until the host crashes.
pub async fn serve(host: Arc<GatewayHost>) -> turmoil::Result {
    let n = host.starts.fetch_add(1, Ordering::Relaxed);
    let name = gateway_host(host.gw);
    if host.corrupt_next_start.swap(false, Ordering::Relaxed)
        && corrupt_backup(
            host.seed
                .wrapping_add(host.damages.fetch_add(1, Ordering::Relaxed)),
        )
    {
        host.trace.now(Event::BackupCorrupted { gw: host.gw });
    }
    host.trace.now(Event::GatewayStarted {
        gw: host.gw,
        backup: host.backup,
    });
    let mut managed = ManagedOptions::new(
        format!("http://{MANAGEMENT}:{MANAGEMENT_PORT}"),
        host.token.clone(),
    );
    if host.backup {
        managed.backup = Some(BackupOptions {
            dir: BACKUP_DIR.into(),
            key: BackupKey::from_bytes([7u8; BackupKey::LEN]),
        });
    }
    managed.instance_id = format!("{name}-{n}");
    managed.hostname = name;
    managed.timing = host.timing;
    let mut options = GatewayOptions::managed(managed);
    options.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), GATEWAY_PORT);
    options.ops_listen = None;
    // Records are uploaded (the default) through the simulated network; batches
    // wait in `BACKUP_DIR/telemetry` on the simulated disk when there is a
    // backup, else in memory only.
    options.telemetry.upload = true;
    options.telemetry.buffer_bytes = host.buffer_bytes;
    let seed = host
        .seed
        .wrapping_mul(31)
        .wrapping_add(host.gw as u64 * 1_000 + n);
    let rt = SimRuntime::new(host.net.clone(), seed, host.sabotage);
    let gateway = Gateway::start_on(options, rt).await?;
    let mut seen = None;
    loop {
        let content = gateway.content();
        if content != seen {
            if let Some(content) = &content {
                host.trace.now(Event::Applied {
                    gw: host.gw,
                    rev: content.revision,
                    digest: content.digest.clone(),
                });
            }
            seen = content;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Overwrites bytes of the backup file, durably; whether there was one. With an
/// odd `pick` the damage hits only the checksum at the end, so the file still
/// decrypts: only the checksum tells that the disk damaged it.
fn corrupt_backup(pick: u64) -> bool {
    use std::io::Write;
    let path = Path::new(BACKUP_DIR).join(BACKUP_FILE_NAME);
    let Ok(mut bytes) = simfs::read(&path) else {
        return false;
    };
    if bytes.is_empty() {
        return false;
    }
    // A fixed pattern, not a flip: damaging twice must not repair.
    let at = if pick.is_multiple_of(2) {
        bytes.len() / 2
    } else {
        bytes.len().saturating_sub(16)
    };
    for (b, p) in bytes.iter_mut().skip(at).zip(b"damaged!damaged!") {
        *b = *p;
    }
    let written = simfs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        });
    written.is_ok()
}
