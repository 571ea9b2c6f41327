//! The store: one SQLite file (WAL, foreign keys, versioned migrations) holding sources,
//! documents, chunks, an FTS5 index and a sqlite-vec `vec0` table with cosine distance.
//!
//! Invariants kept here, because this is the only module that writes SQL:
//! - a document's chunks, their FTS rows and their vectors change in one transaction;
//! - the vector table only ever holds vectors of the one recorded embedding model; choosing
//!   another model drops them all and marks every chunk for re-embedding.

mod autotrain;
mod documents;
mod embeddings;
mod evaluation;
mod migrations;
mod records;
mod retrieval;
mod settings;
mod sources;
mod status;
mod training;
mod types;
mod vectors;

pub use autotrain::{Change, CycleParams, CycleRecord, CycleScores, SideScores, UnseenWriting};
pub use evaluation::{EvalItem, EvalRunId, EvalRunRecord};
pub use records::{DraftEdit, ModelId, ModelRecord, TraceId, TraceRecord};
pub use training::{
    Activation, ActiveAdapter, AdapterId, AdapterRecord, DatasetRecord, ExampleRecord, RunId,
    RunRecord,
};
pub use types::*;
use vectors::{insert_vector, vector_table_exists};
pub use vectors::{VectorIndex, APPROXIMATE_FROM};

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

/// Errors from the store; each names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("{path}: database error: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer Twin.
    #[error("{path}: schema version {found} is newer than this Twin understands ({known})")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// Vectors were requested from a model other than the one the library was embedded with.
    #[error(
        "the library is embedded with {stored}, not {requested}; run an import to re-embed it"
    )]
    ModelMismatch {
        /// The model recorded in the store.
        stored: String,
        /// The model in use.
        requested: String,
    },
    /// No embedding model has been chosen for this library yet.
    #[error("no embedding model is set for this library")]
    NoModel,
}

crate::error::classify!(StoreError {
    kind: Self::TooNew { .. } => BadInput, Self::ModelMismatch { .. } | Self::NoModel => NeedsSetup;
    path: Self::Sqlite { path, .. } | Self::TooNew { path, .. } => path.as_path();
});

type Result<T> = std::result::Result<T, StoreError>;

fn register_sqlite_vec() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_vec_init has the signature SQLite expects of an extension entry point;
        // registering it as an auto-extension is how sqlite-vec documents static linking.
        #[allow(unsafe_code)]
        unsafe {
            rusqlite::ffi::sqlite3_auto_extension(Some(std::mem::transmute::<
                *const (),
                unsafe extern "C" fn(
                    *mut rusqlite::ffi::sqlite3,
                    *mut *mut std::os::raw::c_char,
                    *const rusqlite::ffi::sqlite3_api_routines,
                ) -> i32,
            >(
                sqlite_vec::sqlite3_vec_init as *const (),
            )));
        }
    });
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An open library database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Bumped whenever this connection changes vectors; see `vectors.rs`.
    vector_generation: std::cell::Cell<u64>,
    /// (vector state, vector count); see `vector_count_cached`.
    vector_count_cache: std::cell::Cell<Option<((i64, u64), u64)>>,
    /// Sign bits of every vector for the approximate scan, loaded on first use.
    bit_cache: std::cell::RefCell<vectors::BitCache>,
    /// Which query terms are too common to search on; see `retrieval.rs`.
    common_terms: std::cell::RefCell<retrieval::CommonTerms>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (creating if needed) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        register_sqlite_vec();
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;",
        )
        .map_err(err)?;
        let mut store = Self {
            conn,
            path: path.to_path_buf(),
            vector_generation: std::cell::Cell::new(0),
            vector_count_cache: std::cell::Cell::new(None),
            bit_cache: Default::default(),
            common_terms: Default::default(),
        };
        store.migrate()?;
        store.ensure_quantized()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Run a cached query and collect every row through `map`.
    fn rows<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, map)
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    fn migrate(&mut self) -> Result<()> {
        let known = migrations::MIGRATIONS.len() as i64;
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, sql) in migrations::MIGRATIONS
            .iter()
            .enumerate()
            .skip(version as usize)
        {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
            tx.execute_batch(sql)
                .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .and_then(|_| tx.commit())
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
            tracing::info!(version = i + 1, "applied migration");
        }
        Ok(())
    }

    /// Run `f` in one immediate (write-locking) transaction, committed when it returns `Ok`;
    /// an error names the database.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let value = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(value)
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        let rows: Vec<String> = self
            .conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.err(e))?;
        Ok(rows.join("\n"))
    }

    // ------------------------------------------------------------------ sources
}

fn chunk_row(r: &rusqlite::Row) -> rusqlite::Result<ChunkRow> {
    Ok(ChunkRow {
        id: r.get(0)?,
        document_id: r.get(1)?,
        ord: r.get::<_, i64>(2)? as usize,
        heading_path: r.get(3)?,
        text: r.get(4)?,
        char_start: r.get::<_, i64>(5)? as usize,
        char_end: r.get::<_, i64>(6)? as usize,
        n_tokens: r.get::<_, i64>(7)? as usize,
        embedded: r.get(8)?,
    })
}

fn delete_chunks(tx: &Connection, doc: DocumentId, has_vectors: bool) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM chunks_fts WHERE rowid IN (SELECT id FROM chunks WHERE document_id = ?1)",
        [doc],
    )?;
    if has_vectors {
        vectors::delete_for_document(tx, doc)?;
    }
    tx.execute("DELETE FROM chunks WHERE document_id = ?1", [doc])?;
    Ok(())
}

/// `YYYY-MM-DD` as the integer `YYYYMMDD` (0 when absent), which orders like the date.
pub fn day_number(date: Option<&str>) -> i64 {
    date.and_then(|d| d.get(..10))
        .map(|d| d.replace('-', ""))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}
