//! What search and drafting read: BM25 hits, chunks by id, platforms, exemplars and bodies.

use super::*;
use std::collections::HashMap;

/// Libraries with fewer chunks search every query term: BM25 is fast there anyway, and in a
/// small library a word found in a tenth of the chunks still tells them apart.
const PRUNE_FROM_CHUNKS: u64 = 20_000;

/// A term found in at least 1/`COMMON_SHARE` of the chunks is too common to search on.
const COMMON_SHARE: u64 = 10;

/// Which terms were found too common, for the library state in `key` (data version, changes
/// made by this connection): counting a term's chunks reads its whole posting list.
#[derive(Default)]
pub(super) struct CommonTerms {
    key: Option<(i64, u64)>,
    chunks: u64,
    /// Chunks each term was found in, counted up to a tenth of the library.
    found: HashMap<String, u64>,
}

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

    /// `terms` without those found in a tenth of the chunks or more, on libraries of 20,000
    /// chunks and up; all of them if every one is that common.
    ///
    /// Why: FTS5 scores every chunk a term matches before it keeps the top k, so one word such
    /// as "core" in the Rust docs (46k of 144k chunks) costs tens of milliseconds, while its
    /// BM25 weight is small: IDF ln((N − n)/n) ≤ ln 9 ≈ 2.2 at a tenth of the chunks, against
    /// ~7 for a word in a hundred. `twin bench library --only search-real` measures both.
    pub fn selective_terms(&self, terms: Vec<String>) -> Result<Vec<String>> {
        self.selective_terms_from(terms, PRUNE_FROM_CHUNKS)
    }

    fn selective_terms_from(&self, terms: Vec<String>, from_chunks: u64) -> Result<Vec<String>> {
        if terms.len() < 2 {
            return Ok(terms);
        }
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let key = (version, self.conn.total_changes());
        let mut cache = self.common_terms.borrow_mut();
        if cache.key != Some(key) {
            let chunks: u64 = self
                .conn
                .query_row("SELECT count(*) FROM chunks", [], |r| r.get(0))
                .map_err(|e| self.err(e))?;
            *cache = CommonTerms {
                key: Some(key),
                chunks,
                found: HashMap::new(),
            };
        }
        if cache.chunks < from_chunks {
            return Ok(terms);
        }
        let cap = (cache.chunks / COMMON_SHARE).max(1);
        let mut kept = Vec::with_capacity(terms.len());
        let mut kept_found = 0;
        for term in &terms {
            let found = match cache.found.get(term) {
                Some(&found) => found,
                None => {
                    // Counting stops at the cap: a common term costs a tenth of its list.
                    let found: u64 = self
                        .conn
                        .query_row(
                            &format!(
                                "SELECT count(*) FROM (SELECT 1 FROM chunks_fts
                                 WHERE chunks_fts MATCH ?1 LIMIT {cap})"
                            ),
                            [format!("\"{}\"", term.replace('"', ""))],
                            |r| r.get(0),
                        )
                        .map_err(|e| self.err(e))?;
                    cache.found.insert(term.clone(), found);
                    found
                }
            };
            if found < cap {
                kept.push(term.clone());
                kept_found += found;
            }
        }
        // Only common terms, or the others match nothing: the common ones are all there is.
        Ok(if kept_found == 0 { terms } else { kept })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewChunk, NewDocument};
    use std::path::Path;

    fn terms(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn terms_in_a_tenth_of_a_large_library_are_not_searched() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("twin.db")).unwrap();
        let source = store.add_source(Path::new("/w"), true).unwrap().id;
        // 1,000 chunks: "joint" in every one, "dovetail" in every 50th, "mortise" in none.
        let texts: Vec<String> = (0..1000)
            .map(|i| {
                let rare = if i % 50 == 0 { "dovetail" } else { "board" };
                format!("joint {rare} {i}")
            })
            .collect();
        let body = texts.join("\n");
        let mut at = 0;
        let chunks: Vec<NewChunk> = texts
            .iter()
            .map(|t| {
                let n = t.chars().count();
                let c = NewChunk {
                    heading_path: String::new(),
                    text: t.clone(),
                    char_start: at,
                    char_end: at + n,
                    n_tokens: 3,
                };
                at += n + 1;
                c
            })
            .collect();
        let doc = NewDocument::for_test(source, "/w/a.md", None, &body);
        store.put_document(&doc, &chunks).unwrap();
        let pruned = |words: &[&str], from: u64| store.selective_terms_from(terms(words), from);
        assert_eq!(
            pruned(&["joint", "dovetail"], 100).unwrap(),
            terms(&["dovetail"])
        );
        // "board" is in 98% of the chunks too.
        assert_eq!(
            pruned(&["board", "joint", "dovetail"], 100).unwrap(),
            terms(&["dovetail"])
        );
        // Only common terms, or a rare one that matches nothing: every term is searched.
        assert_eq!(
            pruned(&["joint", "board"], 100).unwrap(),
            terms(&["joint", "board"])
        );
        assert_eq!(
            pruned(&["joint", "mortise"], 100).unwrap(),
            terms(&["joint", "mortise"])
        );
        // A small library searches every term.
        assert_eq!(
            pruned(&["joint", "dovetail"], 5_000).unwrap(),
            terms(&["joint", "dovetail"])
        );
        assert_eq!(
            store
                .selective_terms(terms(&["joint", "dovetail"]))
                .unwrap(),
            terms(&["joint", "dovetail"])
        );
    }
}
