//! What the library holds, whether it is consistent, and its revision (which tells a prepared
//! draft whether the library changed since).

use super::*;

impl Store {
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
}
