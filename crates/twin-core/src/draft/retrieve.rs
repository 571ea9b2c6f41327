//! Choosing the context for a draft: multi-query hybrid search fused by RRF, then maximal
//! marginal relevance under a token budget, plus the user's most representative pieces of the
//! requested format as few-shot exemplars.

use crate::library::LibraryError;
use crate::search::{self, reciprocal_rank_fusion, SearchQuery, RRF_K};
use crate::store::{ChunkHit, ChunkId, SearchFilter, Store};
use serde::Serialize;
use std::collections::HashMap;

/// A chunk chosen as context.
#[derive(Clone, Debug, Serialize)]
pub struct ContextChunk {
    /// The chunk and its document.
    #[serde(flatten)]
    pub hit: ChunkHit,
    /// Fused relevance (RRF over all query variants).
    pub score: f64,
    /// Its stored embedding (not serialised).
    #[serde(skip)]
    pub vector: Vec<f32>,
}

/// Cosine similarity of two L2-normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Run every query (hybrid, `filter`; each with its embedding, the user's topic first) and fuse
/// the ranked lists by RRF. The topic counts twice: variants widen the net, they should not
/// outvote it.
pub fn multi_query(
    store: &Store,
    queries: &[(String, Vec<f32>)],
    filter: &SearchFilter,
    per_query: usize,
) -> Result<Vec<(ChunkHit, f64)>, LibraryError> {
    let mut lists: Vec<Vec<ChunkId>> = Vec::new();
    let mut hits: HashMap<ChunkId, ChunkHit> = HashMap::new();
    for (text, vector) in queries {
        let mut query = SearchQuery::new(text.clone(), per_query);
        query.filter = filter.clone();
        let results = search::run_embedded(store, &query, Some(vector))?;
        lists.push(results.iter().map(|r| r.hit.chunk_id).collect());
        for r in results {
            hits.entry(r.hit.chunk_id).or_insert(r.hit);
        }
    }
    let mut refs: Vec<&[ChunkId]> = lists.iter().map(Vec::as_slice).collect();
    if let Some(first) = lists.first() {
        refs.push(first.as_slice());
    }
    Ok(reciprocal_rank_fusion(&refs, RRF_K)
        .into_iter()
        .filter_map(|(id, score)| hits.remove(&id).map(|h| (h, score)))
        .collect())
}

/// Pick context from `candidates` (best first) by maximal marginal relevance: each pick trades
/// relevance (weight `lambda`) against similarity to what is already picked, near-duplicates
/// (cosine ≥ 0.95 to a pick) are dropped, and picking stops at `keep` chunks or when the next
/// one would overflow `budget_tokens` (counted by `count_tokens`).
///
/// With `topic` (the request's embedding), relevance is the candidate's fused rank and its
/// similarity to the topic, half each. Fusion alone lets query variants decide: a small model's
/// variants drift, three loose ones outvote the topic, and RRF's flat scores (1/61 against 1/70)
/// cannot tell a chunk that every variant ranks fifth from one the topic ranks first.
pub fn select_mmr(
    store: &Store,
    candidates: Vec<(ChunkHit, f64)>,
    topic: Option<&[f32]>,
    keep: usize,
    budget_tokens: usize,
    lambda: f32,
    count_tokens: &dyn Fn(&str) -> usize,
) -> Result<Vec<ContextChunk>, LibraryError> {
    let ids: Vec<ChunkId> = candidates.iter().map(|(h, _)| h.chunk_id).collect();
    let vectors: HashMap<ChunkId, Vec<f32>> = store.vectors_of(&ids)?.into_iter().collect();
    let pool: Vec<ContextChunk> = candidates
        .into_iter()
        .map(|(hit, score)| ContextChunk {
            vector: vectors.get(&hit.chunk_id).cloned().unwrap_or_default(),
            hit,
            score,
        })
        .collect();
    // Both signals are rescaled to 0..1 over the candidates: fused RRF scores sit close together
    // (0.033 vs 0.030), and unscaled they would let the diversity term decide alone.
    let fused = rescaled(pool.iter().map(|c| c.score));
    let relevance: Vec<f32> = match topic {
        Some(t) => {
            let similar = rescaled(pool.iter().map(|c| f64::from(cosine(t, &c.vector))));
            let w = TOPIC_WEIGHT;
            fused
                .iter()
                .zip(similar)
                .map(|(f, s)| (1.0 - w) * f + w * s)
                .collect()
        }
        None => fused,
    };
    let mut pool: Vec<(ContextChunk, f32)> = pool.into_iter().zip(relevance).collect();
    let mut picked: Vec<ContextChunk> = Vec::new();
    let mut used = 0usize;
    while picked.len() < keep && !pool.is_empty() {
        let mut best_i = None;
        let mut best_value = f32::MIN;
        for (i, (c, relevance)) in pool.iter().enumerate() {
            let redundancy = picked
                .iter()
                .map(|p| cosine(&p.vector, &c.vector))
                .fold(0f32, f32::max);
            if redundancy >= 0.95 {
                continue;
            }
            let value = lambda * relevance - (1.0 - lambda) * redundancy;
            if value > best_value {
                best_value = value;
                best_i = Some(i);
            }
        }
        let Some(i) = best_i else { break };
        let (chunk, _) = pool.swap_remove(i);
        let tokens = count_tokens(&chunk.hit.text);
        if used + tokens > budget_tokens {
            // Too long for what is left; a shorter one may still fit.
            continue;
        }
        used += tokens;
        picked.push(chunk);
    }
    Ok(picked)
}

/// How much a context chunk's similarity to the topic counts against its fused rank.
pub const TOPIC_WEIGHT: f32 = 0.5;

/// `values` mapped linearly onto 0..1 (all 1 when they are equal).
fn rescaled(values: impl Iterator<Item = f64> + Clone) -> Vec<f32> {
    let hi = values.clone().fold(f64::MIN, f64::max);
    let lo = values.clone().fold(f64::MAX, f64::min);
    let span = hi - lo;
    values
        .map(|v| {
            if span > 1e-12 {
                ((v - lo) / span) as f32
            } else {
                1.0
            }
        })
        .collect()
}

/// The user's `n` most representative passages on `platforms` (closest to the centroid of
/// their chunks; a LinkedIn draft learns from LinkedIn posts, a newsletter from Substack issues),
/// at most one per document; the whole library when those platforms hold nothing.
pub fn exemplars(
    store: &Store,
    platforms: &[&str],
    n: usize,
) -> Result<Vec<ChunkHit>, LibraryError> {
    let mut ids = store.exemplar_chunk_ids(platforms, 2000)?;
    if ids.is_empty() {
        ids = store.exemplar_chunk_ids(&[], 2000)?;
    }
    let vectors = store.vectors_of(&ids)?;
    let Some(dim) = vectors.first().map(|(_, v)| v.len()) else {
        return Ok(Vec::new());
    };
    let mut centroid = vec![0f32; dim];
    for (_, v) in &vectors {
        for (c, x) in centroid.iter_mut().zip(v) {
            *c += x;
        }
    }
    let norm = centroid.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
    centroid.iter_mut().for_each(|x| *x /= norm);
    let mut ranked: Vec<(ChunkId, f32)> = vectors
        .iter()
        .map(|(id, v)| (*id, cosine(v, &centroid)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let ranked_ids: Vec<ChunkId> = ranked.iter().map(|(id, _)| *id).take(50).collect();
    let mut out: Vec<ChunkHit> = Vec::new();
    for hit in store.chunk_hits(&ranked_ids)? {
        if out.len() == n {
            break;
        }
        if out.iter().all(|h| h.document_id != hit.document_id) {
            out.push(hit);
        }
    }
    Ok(out)
}
