//! Documents and their chunks: what an import writes, moves and deletes, in one transaction each.

use super::*;

impl Store {
    pub(super) fn doc_state_sql(filter: &str) -> String {
        format!("SELECT id, source_id, path, content_hash, mtime, size, duplicate_of FROM documents {filter}")
    }

    pub(super) fn doc_state(r: &rusqlite::Row) -> rusqlite::Result<DocState> {
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
        let (id, existing, reused) = self.write(|tx| {
            let now = now_secs();
            let doc_path = doc.path.to_string_lossy();
            let existing: Option<DocumentId> = tx
                .query_row(
                    "SELECT id FROM documents WHERE path = ?1",
                    [&doc_path],
                    |r| r.get(0),
                )
                .optional()?;
            let has_vectors = vector_table_exists(tx)?;
            // Old chunks keyed by (heading, text), to carry their vectors over.
            let mut reusable: std::collections::HashMap<(String, String), Vec<u8>> = Default::default();
            let id = if let Some(id) = existing {
                if has_vectors {
                    let mut stmt = tx
                        .prepare(
                            "SELECT c.heading_path, c.text, v.embedding FROM chunks c
                             JOIN chunks_vec v ON v.chunk_id = c.id WHERE c.document_id = ?1",
                        )?;
                    let rows = stmt
                        .query_map([id], |r| {
                            Ok(((r.get(0)?, r.get(1)?), r.get::<_, Vec<u8>>(2)?))
                        })
                        .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())?;
                    reusable.extend(rows);
                }
                delete_chunks(tx, id, has_vectors)?;
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
                )?;
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
                )?;
                tx.last_insert_rowid()
            };
            let mut reused = 0;
            {
                let mut insert_chunk = tx
                    .prepare_cached(
                        "INSERT INTO chunks(document_id, ord, heading_path, text, char_start, char_end, n_tokens, embedded)
                         VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                    )?;
                let mut insert_fts = tx
                    .prepare_cached(
                        "INSERT INTO chunks_fts(rowid, title, heading, text) VALUES (?1,?2,?3,?4)",
                    )?;
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
                        ])?;
                    let chunk_id = tx.last_insert_rowid();
                    insert_fts
                        .execute(params![chunk_id, doc.title, c.heading_path, c.text])?;
                    if let Some(v) = vector {
                        let meta = vectors::VectorMeta {
                            source_id: doc.source_id,
                            platform: doc.platform.clone().unwrap_or_default(),
                            day: day_number(doc.date.as_deref()),
                        };
                        insert_vector(tx, chunk_id, &v, &meta)?;
                        reused += 1;
                    }
                }
            }
            Ok((id, existing, reused))
        })?;
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
        self.write(|tx| {
            let has_vectors = vector_table_exists(tx)?;
            delete_chunks(tx, id, has_vectors)?;
            tx.execute("DELETE FROM documents WHERE id = ?1", [id])?;
            Ok(())
        })?;
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
                        info: DocumentInfo {
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
                        },
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
}
