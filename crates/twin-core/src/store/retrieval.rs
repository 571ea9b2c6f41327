//! What search and drafting read: BM25 hits, chunks by id, platforms, exemplars and bodies.

use super::*;

impl Store {
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

    /// Record how the document at `path` was received (see `ExportItem::engagement`).
    pub fn set_engagement(&self, path: &Path, engagement: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE documents SET engagement = ?2 WHERE path = ?1 AND engagement IS NOT ?2",
                params![path.to_string_lossy(), engagement],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Every document's engagement, where an export gave one.
    pub fn engagement_by_document(&self) -> Result<Vec<(DocumentId, i64)>> {
        self.rows(
            "SELECT id, engagement FROM documents WHERE engagement IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The newest document date in the library.
    pub fn newest_date(&self) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT MAX(date) FROM documents", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Ids of the embedded chunks of original documents (no duplicates), in document order.
    pub fn embedded_original_chunk_ids(&self) -> Result<Vec<ChunkId>> {
        self.rows(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id
             WHERE c.embedded = 1 AND d.duplicate_of IS NULL AND d.near_duplicate_of IS NULL
             ORDER BY d.path, c.id",
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
}
