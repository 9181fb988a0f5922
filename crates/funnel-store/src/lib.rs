//! The embedded store: one append-only, checksummed log holding catalog upserts, user
//! upserts and events in arrival order; readers that import files into it all-or-nothing;
//! and the folder layout of immutable snapshots.
//!
//! It knows nothing of models, ranking or HTTP. Other backends (a Kafka-protocol log,
//! PostgreSQL) implement [`RecordLog`].

pub mod import;
mod log;
mod snapshots;

use std::path::PathBuf;

pub use log::{FileLog, LogReader, SegmentStats};
pub use snapshots::{SnapshotDir, SnapshotId, SnapshotWriter};

use funnel_core::Record;

/// The folder layout of one Funnel installation (`--data-dir`).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The event log's segments.
    pub fn log(&self) -> PathBuf {
        self.root.join("log")
    }

    pub fn snapshots(&self) -> SnapshotDir {
        SnapshotDir::new(self.root.join("snapshots"))
    }

    /// The engine configuration read when no `--config` is given.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("funnel.toml")
    }
}

/// The narrow seam between the engine and any event-log backend.
pub trait RecordLog: Send + Sync {
    /// Appends a batch; when this returns `Ok` the batch is durable (survives `kill -9`
    /// and, with fsync, power loss). Either the whole batch is appended or none of it.
    fn append(&self, records: &[Record]) -> Result<(), StoreError>;

    /// Visits every record in log order.
    fn scan(&self, visit: &mut dyn FnMut(Record) -> Result<(), StoreError>) -> Result<(), StoreError>;
}

/// Errors of the store. `Locked`, `NotFound` and `Newer` are the user's to fix; the
/// rest are I/O faults or corruption.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is locked by another Funnel process (a running `funnel serve`?); stop it or use another --data-dir"
    )]
    Locked { path: PathBuf },
    #[error("{path}: corrupt at byte {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("{path}: written by a newer Funnel (format version {found}, this build reads up to {supported})")]
    Newer { path: PathBuf, found: u32, supported: u32 },
    #[error("{path}: not found")]
    NotFound { path: PathBuf },
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
