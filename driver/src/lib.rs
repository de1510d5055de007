//! The async half of the Portcullis gateway, written once for every runtime.
//!
//! `portcullis-core` decides; this crate moves bytes and time between the
//! core's machines and the outside world: the client connection pump, the
//! backend pool, the call-out client, the sync loop, telemetry uploads, file
//! watching, start-up and shutdown. It reaches the runtime only through the
//! [`Runtime`] trait, which `portcullis-runtime-tokio`, `portcullis-runtime-smol`
//! and the simulation (`portcullis-sim`, on turmoil) implement.

pub mod api;
pub mod backup_file;
pub mod callout;
pub mod config_file;
pub mod conn;
pub mod disk;
pub mod gateway;
pub mod jwks;
pub mod nudge;
mod ops;
pub mod options;
pub mod runtime;
#[cfg(feature = "sabotage")]
pub mod sabotage;
pub mod setup;
pub mod shared_config;
pub mod socket;
pub mod stop;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls_server;
pub mod upstream;

pub use backup_file::BACKUP_FILE_NAME;
pub use callout::Callouts;
pub use config_file::{load_config, ConfigFileError};
pub use disk::{Disk, OsDisk};
pub use gateway::{BoundWorker, Gateway, GatewayError, GatewayWorker};
pub use jwks::{JwksOptions, JwksRefresher, KeySetCallback};
pub use options::{
    BackupOptions, CertificateFiles, ConfigOrigin, GatewayOptions, HttpsOptions, ManagedOptions,
    TelemetryOptions, DEFAULT_HTTPS_LISTEN, MAX_SNAPSHOT_BYTES,
};
pub use runtime::{Listener, Runtime, Stream, Timer};
#[cfg(feature = "sabotage")]
pub use sabotage::Sabotage;
pub use shared_config::SharedConfig;
pub use sync::SyncSetupError;
pub use upstream::TlsSetupError;
