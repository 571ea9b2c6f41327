//! The store: one SQLite file (WAL, foreign keys, versioned migrations) holding sources,
//! documents, chunks, an FTS5 index and a sqlite-vec `vec0` table with cosine distance.
//!
//! Invariants kept here, because this is the only module that writes SQL:
//! - a document's chunks, their FTS rows and their vectors change in one transaction;
//! - the vector table only ever holds vectors of the one recorded embedding model; choosing
//!   another model drops them all and marks every chunk for re-embedding.

mod evaluation;
mod migrations;
mod records;
mod training;
mod types;
mod vectors;

pub use evaluation::{EvalItem, EvalRunId, EvalRunRecord};
pub use records::{ModelId, ModelRecord, TraceId, TraceRecord};
pub use training::{
    ActiveAdapter, AdapterId, AdapterRecord, DatasetRecord, ExampleRecord, RunId, RunRecord,
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

    /// Register `path` as a source (idempotent) and return it.
    pub fn add_source(&self, path: &Path, watched: bool) -> Result<Source> {
        let p = path.to_string_lossy();
        self.conn
            .execute(
                "INSERT INTO sources(path, watched, added_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(path) DO UPDATE SET watched = MAX(watched, excluded.watched)",
                params![p, watched, now_secs()],
            )
            .map_err(|e| self.err(e))?;
        self.source_by_path(path)?
            .ok_or(self.err(rusqlite::Error::QueryReturnedNoRows))
    }

    /// The source registered at exactly `path`.
    pub fn source_by_path(&self, path: &Path) -> Result<Option<Source>> {
        self.sources()
            .map(|all| all.into_iter().find(|s| s.path == path))
    }

    /// Every source, with document and chunk counts.
    pub fn sources(&self) -> Result<Vec<Source>> {
        let sql = "SELECT s.id, s.path, s.watched, s.added_at, s.last_sync_at,
                          (SELECT COUNT(*) FROM documents d WHERE d.source_id = s.id),
                          (SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.source_id = s.id),
                          (SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id
                             WHERE d.source_id = s.id AND c.embedded = 0)
                   FROM sources s ORDER BY s.id";
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Source {
                    id: r.get(0)?,
                    path: PathBuf::from(r.get::<_, String>(1)?),
                    watched: r.get(2)?,
                    added_at: r.get(3)?,
                    last_sync_at: r.get(4)?,
                    documents: r.get(5)?,
                    chunks: r.get(6)?,
                    pending_chunks: r.get(7)?,
                    by_platform: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<Source>, _>>())
            .map_err(|e| self.err(e))?;
        let mut rows = rows;
        let counts: Vec<(SourceId, PlatformCount)> = self.rows(
            "SELECT source_id, COALESCE(platform, 'files'), COALESCE(kind, 'document'), COUNT(*)
             FROM documents WHERE duplicate_of IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    PlatformCount {
                        platform: r.get(1)?,
                        kind: r.get(2)?,
                        documents: r.get(3)?,
                    },
                ))
            },
        )?;
        for (source, count) in counts {
            if let Some(s) = rows.iter_mut().find(|s| s.id == source) {
                s.by_platform.push(count);
            }
        }
        Ok(rows)
    }

    /// Record that `source` finished a sync now.
    pub fn mark_synced(&self, source: SourceId) -> Result<()> {
        self.conn
            .execute(
                "UPDATE sources SET last_sync_at = ?2 WHERE id = ?1",
                params![source, now_secs()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Remove a source and everything imported from it.
    pub fn remove_source(&mut self, source: SourceId) -> Result<()> {
        let ids: Vec<DocumentId> = self
            .documents_of_source(source)?
            .into_iter()
            .map(|d| d.id)
            .collect();
        for id in ids {
            self.delete_document(id)?;
        }
        self.conn
            .execute("DELETE FROM sources WHERE id = ?1", [source])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    // ------------------------------------------------------------------ documents

    fn doc_state_sql(filter: &str) -> String {
        format!("SELECT id, source_id, path, content_hash, mtime, size, duplicate_of FROM documents {filter}")
    }

    fn doc_state(r: &rusqlite::Row) -> rusqlite::Result<DocState> {
        Ok(DocState {
            id: r.get(0)?,
            source_id: r.get(1)?,
            path: PathBuf::from(r.get::<_, String>(2)?),
            content_hash: r.get(3)?,
            mtime: r.get(4)?,
            size: r.get(5)?,
            duplicate_of: r.get(6)?,
        })
    }

    /// The stored state of every document of `source`.
    pub fn documents_of_source(&self, source: SourceId) -> Result<Vec<DocState>> {
        self.rows(
            &Self::doc_state_sql("WHERE source_id = ?1"),
            [source],
            Self::doc_state,
        )
    }

    /// The stored state of the document at `path` (a file, or an export item's
    /// `<platform>:<id>`), if there is one.
    pub fn document_state(&self, path: &Path) -> Result<Option<DocState>> {
        self.conn
            .query_row(
                &Self::doc_state_sql("WHERE path = ?1"),
                [path.to_string_lossy()],
                Self::doc_state,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Stored documents at or below any of `roots` (files or folders), across all sources.
    pub fn documents_under(&self, roots: &[PathBuf]) -> Result<Vec<DocState>> {
        let mut stmt = self
            .conn
            .prepare_cached(&Self::doc_state_sql(
                "WHERE path = ?1 OR (path >= ?2 AND path < ?3)",
            ))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for root in roots {
            let p = root.to_string_lossy();
            let p = p.trim_end_matches('/');
            // Children sort between "root/" and "root0" ('0' follows '/').
            let rows = stmt
                .query_map(
                    params![p, format!("{p}/"), format!("{p}0")],
                    Self::doc_state,
                )
                .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| self.err(e))?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Documents recorded as byte-identical copies of `id`.
    pub fn duplicates_of(&self, id: DocumentId) -> Result<Vec<DocState>> {
        self.rows(
            &Self::doc_state_sql("WHERE duplicate_of = ?1"),
            [id],
            Self::doc_state,
        )
    }

    /// Documents whose file bytes hash to `hash`.
    pub fn documents_with_hash(&self, hash: &str) -> Result<Vec<DocState>> {
        self.rows(
            &Self::doc_state_sql("WHERE content_hash = ?1 ORDER BY id"),
            [hash],
            Self::doc_state,
        )
    }

    /// Every document's simhash, for near-duplicate detection.
    pub fn simhashes(&self) -> Result<Vec<(DocumentId, u64)>> {
        self.rows(
            "SELECT id, simhash FROM documents WHERE simhash IS NOT NULL AND duplicate_of IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )
    }

    /// Insert a document, or replace the one at the same path, with its chunks, in one transaction.
    /// Chunks whose heading and text did not change keep their vectors, so an edit re-embeds only
    /// what changed.
    pub fn put_document(&mut self, doc: &NewDocument, chunks: &[NewChunk]) -> Result<PutOutcome> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let now = now_secs();
        let doc_path = doc.path.to_string_lossy();
        let existing: Option<DocumentId> = tx
            .query_row(
                "SELECT id FROM documents WHERE path = ?1",
                [&doc_path],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        let has_vectors = vector_table_exists(&tx).map_err(err)?;
        // Old chunks keyed by (heading, text), to carry their vectors over.
        let mut reusable: std::collections::HashMap<(String, String), Vec<u8>> = Default::default();
        let id = if let Some(id) = existing {
            if has_vectors {
                let mut stmt = tx
                    .prepare(
                        "SELECT c.heading_path, c.text, v.embedding FROM chunks c
                         JOIN chunks_vec v ON v.chunk_id = c.id WHERE c.document_id = ?1",
                    )
                    .map_err(err)?;
                let rows = stmt
                    .query_map([id], |r| {
                        Ok(((r.get(0)?, r.get(1)?), r.get::<_, Vec<u8>>(2)?))
                    })
                    .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(err)?;
                reusable.extend(rows);
            }
            delete_chunks(&tx, id, has_vectors).map_err(err)?;
            tx.execute(
                "UPDATE documents SET source_id=?2, title=?3, platform=?4, format=?5, date=?6, tags=?7,
                        content_hash=?8, mtime=?9, size=?10, body=?11, simhash=?12, duplicate_of=?13,
                        near_duplicate_of=?14, updated_at=?15, kind=?16, url=?17 WHERE id=?1",
                params![
                    id, doc.source_id, doc.title, doc.platform, doc.format, doc.date,
                    serde_json::to_string(&doc.tags).unwrap_or_else(|_| "[]".into()),
                    doc.content_hash, doc.mtime, doc.size, doc.body, doc.simhash.map(|h| h as i64),
                    doc.duplicate_of, doc.near_duplicate_of, now, doc.kind, doc.url
                ],
            )
            .map_err(err)?;
            id
        } else {
            tx.execute(
                "INSERT INTO documents(source_id, path, title, platform, format, date, tags, content_hash,
                        mtime, size, body, simhash, duplicate_of, near_duplicate_of, imported_at, updated_at, kind, url)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?15,?16,?17)",
                params![
                    doc.source_id, doc_path, doc.title, doc.platform, doc.format, doc.date,
                    serde_json::to_string(&doc.tags).unwrap_or_else(|_| "[]".into()),
                    doc.content_hash, doc.mtime, doc.size, doc.body, doc.simhash.map(|h| h as i64),
                    doc.duplicate_of, doc.near_duplicate_of, now, doc.kind, doc.url
                ],
            )
            .map_err(err)?;
            tx.last_insert_rowid()
        };
        let mut reused = 0;
        {
            let mut insert_chunk = tx
                .prepare_cached(
                    "INSERT INTO chunks(document_id, ord, heading_path, text, char_start, char_end, n_tokens, embedded)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                )
                .map_err(err)?;
            let mut insert_fts = tx
                .prepare_cached(
                    "INSERT INTO chunks_fts(rowid, title, heading, text) VALUES (?1,?2,?3,?4)",
                )
                .map_err(err)?;
            for (ord, c) in chunks.iter().enumerate() {
                let vector = reusable.remove(&(c.heading_path.clone(), c.text.clone()));
                insert_chunk
                    .execute(params![
                        id,
                        ord as i64,
                        c.heading_path,
                        c.text,
                        c.char_start as i64,
                        c.char_end as i64,
                        c.n_tokens as i64,
                        vector.is_some()
                    ])
                    .map_err(err)?;
                let chunk_id = tx.last_insert_rowid();
                insert_fts
                    .execute(params![chunk_id, doc.title, c.heading_path, c.text])
                    .map_err(err)?;
                if let Some(v) = vector {
                    let meta = vectors::VectorMeta {
                        source_id: doc.source_id,
                        platform: doc.platform.clone().unwrap_or_default(),
                        day: day_number(doc.date.as_deref()),
                    };
                    insert_vector(&tx, chunk_id, &v, &meta).map_err(err)?;
                    reused += 1;
                }
            }
        }
        tx.commit().map_err(err)?;
        self.vectors_changed();
        Ok(PutOutcome {
            id,
            replaced: existing.is_some(),
            vectors_reused: reused,
        })
    }

    /// Update a document's path and file stamps after a rename; its chunks and vectors stay.
    pub fn move_document(
        &self,
        id: DocumentId,
        source: SourceId,
        path: &Path,
        mtime: i64,
        size: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE documents SET path = ?2, source_id = ?3, mtime = ?4, size = ?5, updated_at = ?6 WHERE id = ?1",
                params![id, path.to_string_lossy(), source, mtime, size, now_secs()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Update a document's file stamps when its bytes did not change (e.g. `touch`).
    pub fn touch_document(&self, id: DocumentId, mtime: i64, size: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE documents SET mtime = ?2, size = ?3 WHERE id = ?1",
                params![id, mtime, size],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Delete a document and its chunks from every index.
    pub fn delete_document(&mut self, id: DocumentId) -> Result<()> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let has_vectors = vector_table_exists(&tx).map_err(err)?;
        delete_chunks(&tx, id, has_vectors).map_err(err)?;
        tx.execute("DELETE FROM documents WHERE id = ?1", [id])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        self.vectors_changed();
        Ok(())
    }

    /// A document with its body, by id.
    pub fn document(&self, id: DocumentId) -> Result<Option<Document>> {
        self.conn
            .query_row(
                "SELECT id, source_id, path, title, platform, format, date, tags, body, duplicate_of, near_duplicate_of,
                        kind, url
                 FROM documents WHERE id = ?1",
                [id],
                |r| {
                    Ok(Document {
                        id: r.get(0)?,
                        source_id: r.get(1)?,
                        path: PathBuf::from(r.get::<_, String>(2)?),
                        title: r.get(3)?,
                        platform: r.get(4)?,
                        format: r.get(5)?,
                        date: r.get(6)?,
                        tags: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                        body: r.get(8)?,
                        duplicate_of: r.get(9)?,
                        near_duplicate_of: r.get(10)?,
                        kind: r.get(11)?,
                        url: r.get(12)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A document's id by its path.
    pub fn document_id_by_path(&self, path: &Path) -> Result<Option<DocumentId>> {
        self.conn
            .query_row(
                "SELECT id FROM documents WHERE path = ?1",
                [path.to_string_lossy()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The chunks of a document, in order.
    pub fn chunks_of(&self, id: DocumentId) -> Result<Vec<ChunkRow>> {
        self.rows(
            "SELECT id, document_id, ord, heading_path, text, char_start, char_end, n_tokens, embedded
             FROM chunks WHERE document_id = ?1 ORDER BY ord",
            [id],
            chunk_row,
        )
    }

    // ------------------------------------------------------------------ embeddings

    /// The embedding model the library's vectors belong to.
    pub fn embedding_model(&self) -> Result<Option<StoredModel>> {
        self.conn
            .query_row(
                "SELECT name, hash, dim, path FROM embedding_model WHERE id = 1",
                [],
                |r| {
                    Ok(StoredModel {
                        name: r.get(0)?,
                        hash: r.get(1)?,
                        dim: r.get::<_, i64>(2)? as usize,
                        path: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Make `model` the library's embedding model. If another model was recorded, every vector is
    /// dropped and every chunk is marked for re-embedding, so vectors of two models never mix.
    /// Returns true when vectors were reset.
    pub fn set_embedding_model(&mut self, model: &StoredModel) -> Result<bool> {
        let current = self.embedding_model()?;
        if current
            .as_ref()
            .is_some_and(|c| c.hash == model.hash && c.dim == model.dim)
        {
            if current.as_ref().is_some_and(|c| c.path != model.path) {
                self.conn
                    .execute(
                        "UPDATE embedding_model SET path = ?1 WHERE id = 1",
                        [&model.path],
                    )
                    .map_err(|e| self.err(e))?;
            }
            return Ok(false);
        }
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch("UPDATE chunks SET embedded = 0;")
            .map_err(err)?;
        vectors::create_tables(&tx, model.dim).map_err(err)?;
        tx.execute(
            "INSERT INTO embedding_model(id, name, hash, dim, path, set_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(id) DO UPDATE SET name=excluded.name, hash=excluded.hash, dim=excluded.dim,
                 path=excluded.path, set_at=excluded.set_at",
            params![model.name, model.hash, model.dim as i64, model.path, now_secs()],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        self.vectors_changed();
        Ok(current.is_some())
    }

    /// Number of chunks waiting for a vector.
    pub fn pending_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM chunks WHERE embedded = 0", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` chunks waiting for a vector, with the document title for context.
    pub fn pending_chunks(&self, limit: usize) -> Result<Vec<PendingChunk>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.id, d.title, c.heading_path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id
                 WHERE c.embedded = 0 ORDER BY c.id LIMIT ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(PendingChunk {
                    id: r.get(0)?,
                    title: r.get(1)?,
                    heading_path: r.get(2)?,
                    text: r.get(3)?,
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Store vectors for chunks, produced by `model`, in one transaction.
    pub fn put_vectors(&mut self, model_hash: &str, vectors: &[(ChunkId, Vec<f32>)]) -> Result<()> {
        let stored = self.embedding_model()?.ok_or(StoreError::NoModel)?;
        if stored.hash != model_hash {
            return Err(StoreError::ModelMismatch {
                stored: stored.name,
                requested: model_hash.into(),
            });
        }
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut meta = tx
                .prepare_cached(
                    "SELECT d.source_id, d.platform, d.date FROM chunks c JOIN documents d ON d.id = c.document_id
                     WHERE c.id = ?1 AND c.embedded = 0",
                )
                .map_err(err)?;
            let mut mark = tx
                .prepare_cached("UPDATE chunks SET embedded = 1 WHERE id = ?1")
                .map_err(err)?;
            for (id, v) in vectors {
                // The chunk may have been deleted (file removed) while it was being embedded, or
                // embedded meanwhile by another process (`twin watch` beside `twin import`).
                let Some((source_id, platform, date)) = meta
                    .query_row([id], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Option<String>>(2)?,
                        ))
                    })
                    .optional()
                    .map_err(err)?
                else {
                    continue;
                };
                let meta = vectors::VectorMeta {
                    source_id,
                    platform: platform.unwrap_or_default(),
                    day: day_number(date.as_deref()),
                };
                insert_vector(&tx, *id, &vectors::to_bytes(v), &meta).map_err(err)?;
                mark.execute([id]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        self.vectors_changed();
        Ok(())
    }

    /// Number of vectors stored.
    pub fn vector_count(&self) -> Result<u64> {
        if !vector_table_exists(&self.conn).map_err(|e| self.err(e))? {
            return Ok(0);
        }
        self.conn
            .query_row("SELECT COUNT(*) FROM chunks_vec", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Number of rows in the full-text index.
    pub fn fts_count(&self) -> Result<u64> {
        // A contentless table answers COUNT(*) from its own docsize records.
        self.conn
            .query_row("SELECT COUNT(*) FROM chunks_fts", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    // ------------------------------------------------------------------ search

    /// Full-text search with BM25 (lower is better in SQLite; returned as a positive score).
    pub fn search_bm25(
        &self,
        fts_query: &str,
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<(ChunkId, f64)>> {
        if fts_query.trim().is_empty() {
            return Ok(Vec::new());
        }
        if filter.is_empty() {
            // Fast path: FTS5's own top-k by rank, then drop chunks of duplicate documents.
            let hits: Vec<(ChunkId, f64)> = self.rows(
                "SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ?1 ORDER BY rank LIMIT ?2",
                params![fts_query, (2 * k) as i64],
                |r| Ok((r.get(0)?, -r.get::<_, f64>(1)?)),
            )?;
            let ids: Vec<String> = hits.iter().map(|(id, _)| id.to_string()).collect();
            let duplicates: std::collections::HashSet<ChunkId> = self
                .rows(
                    &format!(
                        "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id
                         WHERE c.id IN ({}) AND d.duplicate_of IS NOT NULL",
                        ids.join(",")
                    ),
                    [],
                    |r| r.get(0),
                )?
                .into_iter()
                .collect();
            let kept: Vec<(ChunkId, f64)> = hits
                .iter()
                .filter(|(id, _)| !duplicates.contains(id))
                .take(k)
                .copied()
                .collect();
            if kept.len() == k || hits.len() < 2 * k {
                return Ok(kept);
            }
        }
        let (clause, mut values) = filter.sql("d");
        let sql = format!(
            "SELECT f.rowid, bm25(chunks_fts, 4.0, 2.0, 1.0) AS s
             FROM chunks_fts f JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.document_id
             WHERE chunks_fts MATCH ?1 AND d.duplicate_of IS NULL {clause}
             ORDER BY s LIMIT {k}"
        );
        values.insert(0, rusqlite::types::Value::Text(fts_query.to_string()));
        self.rows(&sql, rusqlite::params_from_iter(values), |r| {
            Ok((r.get(0)?, -r.get::<_, f64>(1)?))
        })
    }

    /// Whether any chunk of the user's writing contains `word` (one word, as the full-text
    /// index tokenizes it): draft health asks this of every name and number a draft asserts.
    pub fn mentions(&self, word: &str) -> Result<bool> {
        let term = word.replace('"', "");
        if term.trim().is_empty() {
            return Ok(false);
        }
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ?1)",
                [format!("\"{term}\"")],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Chunks with their document's path, title and metadata, in the order of `ids`.
    pub fn chunk_hits(&self, ids: &[ChunkId]) -> Result<Vec<ChunkHit>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.id, c.document_id, d.path, d.title, d.platform, d.date, c.heading_path, c.text,
                        c.char_start, c.char_end, d.source_id
                 FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let hit = stmt
                .query_row([id], |r| {
                    Ok(ChunkHit {
                        chunk_id: r.get(0)?,
                        document_id: r.get(1)?,
                        path: PathBuf::from(r.get::<_, String>(2)?),
                        title: r.get(3)?,
                        platform: r.get(4)?,
                        date: r.get(5)?,
                        heading_path: r.get(6)?,
                        text: r.get(7)?,
                        char_start: r.get::<_, i64>(8)? as usize,
                        char_end: r.get::<_, i64>(9)? as usize,
                        source_id: r.get(10)?,
                    })
                })
                .optional()
                .map_err(|e| self.err(e))?;
            out.extend(hit);
        }
        Ok(out)
    }

    /// Platforms present in the library, most documents first.
    pub fn platforms(&self) -> Result<Vec<(String, u64)>> {
        self.rows(
            "SELECT platform, COUNT(*) FROM documents
             WHERE platform IS NOT NULL AND duplicate_of IS NULL
             GROUP BY platform ORDER BY COUNT(*) DESC, platform",
            [],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)),
        )
    }

    /// Up to `limit` chunk ids of the user's model writing on any of `platforms` (all when
    /// empty): duplicates, pages, comments and replies left out, since none of them is what a
    /// draft should imitate.
    pub fn exemplar_chunk_ids(&self, platforms: &[&str], limit: usize) -> Result<Vec<ChunkId>> {
        let marks = vec!["?"; platforms.len()].join(",");
        let platform_clause = if platforms.is_empty() {
            String::new()
        } else {
            format!("AND d.platform IN ({marks})")
        };
        let sql = format!(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id
             WHERE d.duplicate_of IS NULL AND COALESCE(d.kind, '') NOT IN ('page', 'comment', 'reply')
             {platform_clause} ORDER BY c.id LIMIT {}",
            limit as i64
        );
        self.rows(&sql, rusqlite::params_from_iter(platforms), |r| r.get(0))
    }

    /// Ids of documents that are neither duplicates nor near-duplicates, by path.
    pub fn original_document_ids(&self) -> Result<Vec<DocumentId>> {
        self.rows(
            "SELECT id FROM documents WHERE duplicate_of IS NULL AND near_duplicate_of IS NULL
             ORDER BY path",
            [],
            |r| r.get(0),
        )
    }

    /// Cleaned bodies of up to `limit` distinct documents, newest first, for style statistics.
    pub fn document_bodies(
        &self,
        limit: usize,
    ) -> Result<Vec<(DocumentId, Option<String>, String)>> {
        self.rows(
            "SELECT id, platform, body FROM documents WHERE duplicate_of IS NULL
             ORDER BY date DESC, id LIMIT ?1",
            [limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    // ------------------------------------------------------------------ status

    /// Counts for `twin status`.
    pub fn stats(&self) -> Result<LibraryStats> {
        let q = |sql: &str| -> Result<u64> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        Ok(LibraryStats {
            sources: q("SELECT COUNT(*) FROM sources")?,
            documents: q("SELECT COUNT(*) FROM documents")?,
            duplicates: q("SELECT COUNT(*) FROM documents WHERE duplicate_of IS NOT NULL")?,
            near_duplicates: q(
                "SELECT COUNT(*) FROM documents WHERE near_duplicate_of IS NOT NULL",
            )?,
            chunks: q("SELECT COUNT(*) FROM chunks")?,
            embedded_chunks: q("SELECT COUNT(*) FROM chunks WHERE embedded = 1")?,
            vectors: self.vector_count()?,
            embedding_model: self.embedding_model()?,
            database_bytes: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
            by_platform: self.rows(
                "SELECT COALESCE(platform, 'files'), COALESCE(kind, 'document'), COUNT(*)
                 FROM documents WHERE duplicate_of IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
                [],
                |r| {
                    Ok(PlatformCount {
                        platform: r.get(0)?,
                        kind: r.get(1)?,
                        documents: r.get(2)?,
                    })
                },
            )?,
        })
    }

    /// A full consistency check of the library file: SQLite's `integrity_check`, the
    /// full-text index's own check, and that every chunk is indexed once, every embedded chunk
    /// has exactly one vector and no vector outlives its chunk. What `twin status --check` and
    /// the crash trials run.
    pub fn check(&self) -> Result<Consistency> {
        let q = |sql: &str| -> Result<u64> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        let integrity: Vec<String> = self.rows("PRAGMA integrity_check", [], |r| r.get(0))?;
        let fts_integrity = match self.conn.execute(
            "INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 0)",
            [],
        ) {
            Ok(_) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        let vectors_exist = vector_table_exists(&self.conn).map_err(|e| self.err(e))?;
        let (orphan_vectors, embedded_without_vector) = if vectors_exist {
            (
                q("SELECT COUNT(*) FROM chunks_vec WHERE chunk_id NOT IN (SELECT id FROM chunks)")?,
                q("SELECT COUNT(*) FROM chunks WHERE embedded = 1
                   AND id NOT IN (SELECT chunk_id FROM chunks_vec)")?,
            )
        } else {
            (0, q("SELECT COUNT(*) FROM chunks WHERE embedded = 1")?)
        };
        let c = Consistency {
            integrity: integrity.join("; "),
            fts_integrity,
            chunks: q("SELECT COUNT(*) FROM chunks")?,
            fts_rows: self.fts_count()?,
            embedded_chunks: q("SELECT COUNT(*) FROM chunks WHERE embedded = 1")?,
            vectors: self.vector_count()?,
            orphan_vectors,
            embedded_without_vector,
            ok: false,
        };
        Ok(Consistency {
            ok: c.integrity == "ok"
                && c.fts_integrity == "ok"
                && c.fts_rows == c.chunks
                && c.vectors == c.embedded_chunks
                && c.orphan_vectors == 0
                && c.embedded_without_vector == 0,
            ..c
        })
    }

    /// Whether any chunk has its embedding: what drafting needs, at the cost of finding one row
    /// (the counts of [`Store::stats`] scan whole tables, on every draft's path to its first
    /// token).
    pub fn has_embedded_chunks(&self) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM chunks WHERE embedded = 1)",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// The library's generation: it moves whenever a document is added, removed, or its text,
    /// date or duplicate flag changes, and is kept in the file (unlike [`Store::revision`]), so a
    /// result computed from the whole library can be cached across runs under it.
    pub fn library_generation(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT n FROM library_generation WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    /// The database's revision: it changes with every write, through this connection or any
    /// other (SQLite's `data_version`), so work derived from the library can tell it is stale.
    pub fn revision(&self) -> Result<Revision> {
        let others: u64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(Revision {
            own_changes: self.conn.total_changes(),
            others,
        })
    }

    /// A setting's value.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Remove a setting.
    pub fn delete_setting(&self, key: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM settings WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Set a setting's value.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
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
