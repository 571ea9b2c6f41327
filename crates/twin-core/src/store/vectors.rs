//! The vector indexes, kept in step in the same transactions:
//!
//! - `chunks_vec`: float vectors in a sqlite-vec `vec0` table, cosine distance — the exact
//!   index and the source of truth, with filter columns (source, platform, day) so filters
//!   apply inside the KNN rather than after it;
//! - `chunk_codes`: the same vectors quantized, one sign bit and one int8 per dimension, in an
//!   ordinary rowid table.
//!
//! Large libraries search the quantized copy: the bits are loaded once into memory (48 bytes per
//! 384-d chunk) and scanned by Hamming distance for candidates, which are re-scored by int8
//! cosine. sqlite-vec's own scan costs about 0.7 µs per vector whatever the element type
//! (measured: float and bit both ~8 ms at 10k, 75 and 62 ms at 100k), which misses the 20 ms
//! goal at 100k; the in-memory scan is about two orders of magnitude cheaper.

use super::{day_number, ChunkId, DocumentId, Result, SearchFilter, Store, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

/// From this many vectors on, [`VectorIndex::Auto`] uses the quantized index: below it the
/// exact scan is already fast (about 8 ms at 10k chunks on 2 cores).
pub const APPROXIMATE_FROM: u64 = 50_000;

/// Candidates scanned by Hamming distance per result wanted.
const OVERSAMPLE: usize = 10;

/// Which vector index a KNN query uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VectorIndex {
    /// Exact cosine over the float vectors.
    Exact,
    /// Hamming candidates from the bit index, re-scored with int8 cosine.
    Approximate,
    /// Exact below [`APPROXIMATE_FROM`] vectors, approximate from there.
    #[default]
    Auto,
}

/// The filter columns stored beside each vector.
pub(super) struct VectorMeta {
    pub source_id: i64,
    pub platform: String,
    pub day: i64,
}

/// Little-endian bytes of a float vector, as sqlite-vec reads them.
pub(super) fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// An int8 code scaled by the vector's largest magnitude; cosine is scale-free, so the scale
/// need not be kept.
fn int8_code(v: &[f32]) -> Vec<u8> {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { 127.0 / max } else { 0.0 };
    v.iter()
        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8 as u8)
        .collect()
}

/// One sign bit per dimension, packed into little-endian u64 words.
fn sign_bits(v: &[f32]) -> Vec<u8> {
    let mut words = vec![0u64; v.len().div_ceil(64)];
    for (i, x) in v.iter().enumerate() {
        if *x > 0.0 {
            words[i / 64] |= 1 << (i % 64);
        }
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn cosine_distance_to_code(query: &[f32], code: &[u8]) -> f64 {
    let (mut dot, mut qq, mut cc) = (0f32, 0f32, 0f32);
    for (q, c) in query.iter().zip(code) {
        let c = *c as i8 as f32;
        dot += q * c;
        qq += q * q;
        cc += c * c;
    }
    if qq == 0.0 || cc == 0.0 {
        return 1.0;
    }
    1.0 - (dot / (qq.sqrt() * cc.sqrt())) as f64
}

pub(super) fn vector_table_exists(conn: &Connection) -> rusqlite::Result<bool> {
    table_exists(conn, "chunks_vec")
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// (Re)create the three vector tables for vectors of `dim` dimensions, empty.
pub(super) fn create_tables(tx: &Connection, dim: usize) -> rusqlite::Result<()> {
    tx.execute_batch(&format!(
        "DROP TABLE IF EXISTS chunks_vec;
         DELETE FROM chunk_codes;
         CREATE VIRTUAL TABLE chunks_vec USING vec0(
             chunk_id INTEGER PRIMARY KEY,
             embedding float[{dim}] distance_metric=cosine,
             source_id INTEGER,
             platform TEXT,
             day INTEGER
         );"
    ))
}

/// Fill the quantized copy from the float vectors, for libraries embedded before it existed.
/// A no-op when every vector already has its codes.
pub(super) fn backfill_quantized(conn: &mut Connection) -> rusqlite::Result<()> {
    if !vector_table_exists(conn)? {
        return Ok(());
    }
    let codes: i64 = conn.query_row("SELECT COUNT(*) FROM chunk_codes", [], |r| r.get(0))?;
    let vectors: i64 =
        conn.query_row("SELECT COUNT(*) FROM chunks WHERE embedded = 1", [], |r| {
            r.get(0)
        })?;
    if codes >= vectors {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut read = tx.prepare("SELECT chunk_id, embedding FROM chunks_vec")?;
        let mut write = tx.prepare(
            "INSERT OR REPLACE INTO chunk_codes(chunk_id, bits, code) VALUES (?1, ?2, ?3)",
        )?;
        let mut rows = read.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let v = from_bytes(&r.get::<_, Vec<u8>>(1)?);
            write.execute(params![id, sign_bits(&v), int8_code(&v)])?;
        }
    }
    tx.commit()
}

/// Insert one chunk's vector (little-endian f32 bytes) into every vector index.
pub(super) fn insert_vector(
    tx: &Connection,
    chunk: ChunkId,
    bytes: &[u8],
    meta: &VectorMeta,
) -> rusqlite::Result<()> {
    let mut exact = tx.prepare_cached(
        "INSERT INTO chunks_vec(chunk_id, embedding, source_id, platform, day) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    exact.execute(params![
        chunk,
        bytes,
        meta.source_id,
        meta.platform,
        meta.day
    ])?;
    let mut codes = tx.prepare_cached(
        "INSERT OR REPLACE INTO chunk_codes(chunk_id, bits, code) VALUES (?1, ?2, ?3)",
    )?;
    let v = from_bytes(bytes);
    codes.execute(params![chunk, sign_bits(&v), int8_code(&v)])?;
    Ok(())
}

/// Remove a document's vectors from every index.
pub(super) fn delete_for_document(tx: &Connection, doc: DocumentId) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM chunks_vec WHERE chunk_id IN (SELECT id FROM chunks WHERE document_id = ?1)",
        [doc],
    )?;
    tx.execute(
        "DELETE FROM chunk_codes WHERE chunk_id IN (SELECT id FROM chunks WHERE document_id = ?1)",
        [doc],
    )?;
    Ok(())
}

/// The filter as a `vec0` metadata-column clause, parameters numbered after `first`.
fn filter_clause(filter: &SearchFilter, first: usize) -> (String, Vec<rusqlite::types::Value>) {
    let mut clause = String::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    let mut push = |cond: &str, v: rusqlite::types::Value| {
        values.push(v);
        clause.push_str(&format!(" AND {cond} ?{}", first + values.len()));
    };
    if let Some(s) = filter.source {
        push("source_id =", s.into());
    }
    if let Some(p) = &filter.platform {
        push("platform =", p.clone().into());
    }
    if let Some(from) = &filter.date_from {
        push("day >=", day_number(Some(from)).into());
    }
    if let Some(to) = &filter.date_to {
        push("day <=", day_number(Some(to)).into());
    }
    (clause, values)
}

/// The sign bits of every vector, held in memory for the Hamming scan, with the filter columns.
#[derive(Default)]
pub(super) struct BitCache {
    /// (`PRAGMA data_version`, the store's own vector generation) when loaded.
    key: Option<(i64, u64)>,
    words: usize,
    ids: Vec<ChunkId>,
    bits: Vec<u64>,
    source: Vec<i64>,
    platform: Vec<String>,
    kind: Vec<String>,
    day: Vec<i64>,
}

impl BitCache {
    fn passes(&self, i: usize, filter: &SearchFilter, from: i64, to: i64) -> bool {
        filter.source.is_none_or(|s| self.source[i] == s)
            && filter
                .platform
                .as_ref()
                .is_none_or(|p| &self.platform[i] == p)
            && filter.kind.as_ref().is_none_or(|k| &self.kind[i] == k)
            && self.day[i] >= from
            && self.day[i] <= to
    }
}

impl Store {
    /// Nearest chunks to `vector` by cosine distance (smaller is closer), filtered inside the
    /// KNN, through the index [`VectorIndex::Auto`] picks.
    pub fn search_vector(
        &self,
        vector: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<(ChunkId, f64)>> {
        self.search_vector_with(VectorIndex::Auto, vector, filter, k)
    }

    /// Nearest chunks to `vector` through a chosen index.
    pub fn search_vector_with(
        &self,
        index: VectorIndex,
        vector: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<(ChunkId, f64)>> {
        if !vector_table_exists(&self.conn).map_err(|e| self.err(e))? {
            return Ok(Vec::new());
        }
        let approximate = match index {
            // `vec0`'s metadata columns predate documents' kind; the in-memory index filters
            // on it (with the same int8 re-scoring).
            _ if filter.kind.is_some() => true,
            VectorIndex::Exact => false,
            VectorIndex::Approximate => true,
            VectorIndex::Auto => self.vector_count_cached()? >= APPROXIMATE_FROM,
        };
        if approximate {
            self.search_approximate(vector, filter, k)
        } else {
            self.search_exact(vector, filter, k)
        }
    }

    /// The stored float vectors of `ids` (those that have one), in the order of `ids`.
    pub fn vectors_of(&self, ids: &[ChunkId]) -> Result<Vec<(ChunkId, Vec<f32>)>> {
        if !vector_table_exists(&self.conn).map_err(|e| self.err(e))? {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(ids.len());
        let mut stmt = self
            .conn
            .prepare_cached("SELECT embedding FROM chunks_vec WHERE chunk_id = ?1")
            .map_err(|e| self.err(e))?;
        for &id in ids {
            let bytes: Option<Vec<u8>> = stmt
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(b) = bytes {
                out.push((id, from_bytes(&b)));
            }
        }
        Ok(out)
    }

    fn search_exact(
        &self,
        vector: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<(ChunkId, f64)>> {
        let (clause, mut values) = filter_clause(filter, 1);
        values.insert(0, to_bytes(vector).into());
        let k = k.clamp(1, 4096); // sqlite-vec's limit on k
        let sql = format!(
            "SELECT chunk_id, distance FROM chunks_vec WHERE embedding MATCH ?1 AND k = {k} {clause} ORDER BY distance"
        );
        self.rows(&sql, rusqlite::params_from_iter(values), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    fn search_approximate(
        &self,
        vector: &[f32],
        filter: &SearchFilter,
        k: usize,
    ) -> Result<Vec<(ChunkId, f64)>> {
        self.load_bit_cache()?;
        let cache = self.bit_cache.borrow();
        let query: Vec<u64> = sign_bits(vector)
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        let from = filter
            .date_from
            .as_deref()
            .map_or(i64::MIN, |d| day_number(Some(d)));
        let to = filter
            .date_to
            .as_deref()
            .map_or(i64::MAX, |d| day_number(Some(d)));
        let w = cache.words;
        let mut candidates: Vec<(u32, usize)> = Vec::with_capacity(cache.ids.len());
        for (i, row) in cache.bits.chunks_exact(w.max(1)).enumerate() {
            if cache.passes(i, filter, from, to) {
                let d: u32 = row
                    .iter()
                    .zip(&query)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum();
                candidates.push((d, i));
            }
        }
        let wanted = (k * OVERSAMPLE).min(candidates.len());
        if wanted < candidates.len() {
            candidates.select_nth_unstable(wanted);
            candidates.truncate(wanted);
        }
        let mut code = self
            .conn
            .prepare_cached("SELECT code FROM chunk_codes WHERE chunk_id = ?1")
            .map_err(|e| self.err(e))?;
        let mut scored = Vec::with_capacity(candidates.len());
        for (_, i) in candidates {
            let id = cache.ids[i];
            let c: Option<Vec<u8>> = code
                .query_row([id], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(c) = c {
                scored.push((id, cosine_distance_to_code(vector, &c)));
            }
        }
        scored.sort_by(|a, b| a.1.total_cmp(&b.1));
        scored.truncate(k);
        Ok(scored)
    }

    /// What identifies the current state of the vectors: other connections' commits move
    /// `data_version`, this connection's vector writes move `vector_generation`.
    fn vector_state(&self) -> Result<(i64, u64)> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok((version, self.vector_generation.get()))
    }

    /// Note that this connection changed vectors, so cached counts and bits are reloaded.
    pub(super) fn vectors_changed(&self) {
        self.vector_generation.set(self.vector_generation.get() + 1);
    }

    fn load_bit_cache(&self) -> Result<()> {
        let key = self.vector_state()?;
        if self.bit_cache.borrow().key == Some(key) {
            return Ok(());
        }
        let _span = tracing::info_span!("load_bit_cache").entered();
        let mut cache = BitCache {
            key: Some(key),
            ..Default::default()
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT k.chunk_id, k.bits, d.source_id, COALESCE(d.platform, ''), d.date, COALESCE(d.kind, '')
                 FROM chunk_codes k JOIN chunks c ON c.id = k.chunk_id JOIN documents d ON d.id = c.document_id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let bits: Vec<u8> = r.get(1).map_err(|e| self.err(e))?;
            if cache.words == 0 {
                cache.words = bits.len() / 8;
            }
            if bits.len() != cache.words * 8 {
                continue; // a vector of another width cannot be compared; never expected
            }
            cache.ids.push(r.get(0).map_err(|e| self.err(e))?);
            cache.bits.extend(
                bits.chunks_exact(8)
                    .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])),
            );
            cache.source.push(r.get(2).map_err(|e| self.err(e))?);
            cache.platform.push(r.get(3).map_err(|e| self.err(e))?);
            let date: Option<String> = r.get(4).map_err(|e| self.err(e))?;
            cache.day.push(day_number(date.as_deref()));
            cache.kind.push(r.get(5).map_err(|e| self.err(e))?);
        }
        *self.bit_cache.borrow_mut() = cache;
        Ok(())
    }

    /// The vector count, re-read only when the vectors changed, because counting is a scan and
    /// searches ask on every query.
    fn vector_count_cached(&self) -> Result<u64> {
        let key = self.vector_state()?;
        if let Some((k, n)) = self.vector_count_cache.get() {
            if k == key {
                return Ok(n);
            }
        }
        let n: u64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM chunk_codes", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        self.vector_count_cache.set(Some((key, n)));
        Ok(n)
    }

    /// Build the quantized copy if the library predates it (see [`backfill_quantized`]).
    pub(super) fn ensure_quantized(&mut self) -> Result<()> {
        let path = self.path.clone();
        backfill_quantized(&mut self.conn).map_err(|source| StoreError::Sqlite { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_codes_keep_cosine() {
        let a: Vec<f32> = (0..384)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 40.0)
            .collect();
        let b: Vec<f32> = (0..384)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 30.0)
            .collect();
        let exact = {
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            1.0 - (dot / (na * nb)) as f64
        };
        let approx = cosine_distance_to_code(&a, &int8_code(&b));
        assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
        assert!(cosine_distance_to_code(&a, &int8_code(&a)).abs() < 1e-3);
    }
}
