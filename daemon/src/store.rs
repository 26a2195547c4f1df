//! The state database: one crash-safe redb file in `[state] dir`, shared by
//! alert state and the notification outbox (redb allows one open handle per
//! file, so the daemon opens it once and hands it around).
//!
//! Without a state directory (the embedded default, or a test) the database
//! lives in memory: everything works, nothing survives a restart, and the
//! daemon says so at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::Database;

/// File name inside the state directory.
pub const FILE_NAME: &str = "state.redb";

/// Why the state database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open state database {path}: {source}")]
pub struct StoreError {
    path: PathBuf,
    #[source]
    source: Box<redb::Error>,
}

/// The shared database handle.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Database>,
    path: Option<PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`, or an in-memory one.
    pub fn open(dir: Option<&Path>) -> Result<Store, StoreError> {
        let Some(dir) = dir else {
            let db = Database::builder()
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(|e| StoreError {
                    path: PathBuf::from("<memory>"),
                    source: Box::new(e.into()),
                })?;
            return Ok(Store {
                db: Arc::new(db),
                path: None,
            });
        };
        let path = dir.join(FILE_NAME);
        let fail = |e: redb::Error| StoreError {
            path: path.clone(),
            source: Box::new(e),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(redb::Error::Io(e)))?;
        let db = Database::create(&path).map_err(|e| fail(e.into()))?;
        Ok(Store {
            db: Arc::new(db),
            path: Some(path),
        })
    }

    /// The database.
    pub fn db(&self) -> &Database {
        &self.db
    }

    /// Where it lives; `None` when in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}
