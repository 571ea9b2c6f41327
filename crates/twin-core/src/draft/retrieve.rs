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
    let vectors: Vec<&[f32]> = pool.iter().map(|c| c.vector.as_slice()).collect();
    let mut used = 0usize;
    let order = mmr(&relevance, &vectors, lambda, keep, |i| {
        let tokens = count_tokens(&pool[i].hit.text);
        // Too long for what is left; a shorter one may still fit.
        let fits = used + tokens <= budget_tokens;
        if fits {
            used += tokens;
        }
        fits
    });
    let mut pool: Vec<Option<ContextChunk>> = pool.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| pool[i].take()).collect())
}

/// Similarity to an item already picked at which a candidate counts as the same item again.
const NEAR_DUPLICATE: f32 = 0.95;

/// Maximal marginal relevance: the order in which to take items with `relevance` and unit
/// `vectors`. Each next item is the one with the best `lambda · relevance − (1 − lambda) ·
/// redundancy`, redundancy being its highest similarity to an item already taken; an item at
/// least [`NEAR_DUPLICATE`]-similar to one taken is never taken. `accept` sees each best item
/// once and may turn it down (it is then dropped, and the next best is tried). Stops at `keep`
/// items accepted or when none is left. Ties go to the earlier item.
pub(super) fn mmr(
    relevance: &[f32],
    vectors: &[&[f32]],
    lambda: f32,
    keep: usize,
    mut accept: impl FnMut(usize) -> bool,
) -> Vec<usize> {
    let mut left: Vec<usize> = (0..relevance.len().min(vectors.len())).collect();
    let mut taken: Vec<usize> = Vec::new();
    while taken.len() < keep {
        let best = left
            .iter()
            .enumerate()
            .filter_map(|(slot, &i)| {
                let redundancy = taken
                    .iter()
                    .map(|&j| cosine(vectors[i], vectors[j]))
                    .fold(0f32, f32::max);
                (redundancy < NEAR_DUPLICATE)
                    .then(|| (slot, lambda * relevance[i] - (1.0 - lambda) * redundancy))
            })
            // `max_by` keeps the last of equal values; reversed, ties go to the earlier item.
            .rev()
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((slot, _)) = best else { break };
        let i = left.remove(slot);
        if accept(i) {
            taken.push(i);
        }
    }
    taken
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(x: f32, y: f32) -> Vec<f32> {
        let n = (x * x + y * y).sqrt();
        vec![x / n, y / n]
    }

    #[test]
    fn mmr_trades_relevance_for_diversity_and_skips_near_duplicates() {
        // 0 and 1 say the same thing; 2 is less relevant but different; 3 is off.
        let vectors = [
            unit(1.0, 0.0),
            unit(1.0, 0.01),
            unit(0.5, 0.8),
            unit(0.0, 1.0),
        ];
        let vectors: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let relevance = [0.9, 0.89, 0.6, 0.1];
        assert_eq!(mmr(&relevance, &vectors, 0.7, 3, |_| true), vec![0, 2, 3]);
        // Relevance alone takes the near-duplicate's place with the next distinct item.
        assert_eq!(mmr(&relevance, &vectors, 1.0, 2, |_| true), vec![0, 2]);
    }

    #[test]
    fn mmr_drops_what_accept_turns_down_and_tries_the_next() {
        let vectors = [unit(1.0, 0.0), unit(0.0, 1.0), unit(0.7, 0.7)];
        let vectors: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let mut seen = Vec::new();
        let order = mmr(&[0.9, 0.8, 0.5], &vectors, 1.0, 2, |i| {
            seen.push(i);
            i != 1
        });
        assert_eq!(order, vec![0, 2]);
        assert_eq!(seen, vec![0, 1, 2]);
        // Equal values: the earlier item first.
        assert_eq!(mmr(&[0.5, 0.5], &vectors[..2], 1.0, 1, |_| true), vec![0]);
    }
}
