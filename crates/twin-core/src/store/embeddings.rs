//! The library's embedding model and its vectors: which chunks still wait for one, and writing them.

use super::*;

impl Store {
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
        self.write(|tx| {
            tx.execute_batch("UPDATE chunks SET embedded = 0;")?;
            vectors::create_tables(tx, model.dim)?;
            tx.execute(
                "INSERT INTO embedding_model(id, name, hash, dim, path, set_at) VALUES (1, ?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO UPDATE SET name=excluded.name, hash=excluded.hash, dim=excluded.dim,
                     path=excluded.path, set_at=excluded.set_at",
                params![model.name, model.hash, model.dim as i64, model.path, now_secs()],
            )?;
            Ok(())
        })?;
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
        self.pending_chunks_after(0, limit)
    }

    /// Like [`Self::pending_chunks`], from chunk ids above `after` only: a reader that has
    /// chunks in flight (read, not yet written back) moves on past them.
    pub fn pending_chunks_after(&self, after: ChunkId, limit: usize) -> Result<Vec<PendingChunk>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.id, d.title, c.heading_path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id
                 WHERE c.embedded = 0 AND c.id > ?1 ORDER BY c.id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([after, limit as i64], |r| {
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
        self.write(|tx| {
            {
                let mut meta = tx
                    .prepare_cached(
                        "SELECT d.source_id, d.platform, d.date FROM chunks c JOIN documents d ON d.id = c.document_id
                         WHERE c.id = ?1 AND c.embedded = 0",
                    )?;
                let mut mark = tx
                    .prepare_cached("UPDATE chunks SET embedded = 1 WHERE id = ?1")?;
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
                        .optional()?
                    else {
                        continue;
                    };
                    let meta = vectors::VectorMeta {
                        source_id,
                        platform: platform.unwrap_or_default(),
                        day: day_number(date.as_deref()),
                    };
                    insert_vector(tx, *id, &vectors::to_bytes(v), &meta)?;
                    mark.execute([id])?;
                }
            }
            Ok(())
        })?;
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
}
