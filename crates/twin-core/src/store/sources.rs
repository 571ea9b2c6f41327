//! Sources: the folders and files the user imported, watched or not.

use super::*;

impl Store {
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
}
