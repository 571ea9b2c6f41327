//! Hybrid search: FTS5 BM25 and sqlite-vec KNN, fused by reciprocal rank fusion.
//!
//! RRF (score = Σ 1 / (k + rank), k = 60) needs no score calibration between the two
//! retrievers, which is why it is the default: BM25 scores and cosine distances live on
//! unrelated scales, but ranks compare directly.

use crate::engine::Embedder;
use crate::store::{ChunkHit, ChunkId, SearchFilter, Store};
use serde::Serialize;
use std::collections::HashMap;

/// Why the library holds no embedding model yet, and what to do (search and import share it).
pub const NO_EMBEDDING_MODEL: &str =
    "no embedding model is set; import one first: twin models import models/all-MiniLM-L6-v2";

/// What can go wrong in a search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The embedding model failed.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// A vector or hybrid search without an embedding model.
    #[error("{}", NO_EMBEDDING_MODEL)]
    NoEmbeddingModel,
}

crate::error::classify!(SearchError {
    kind: Self::NoEmbeddingModel => NeedsSetup;
    inner: Store, Engine;
});

/// The RRF constant from the original paper (Cormack et al., 2009).
pub const RRF_K: f64 = 60.0;

/// Which retriever(s) to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Full-text BM25 only.
    Bm25,
    /// Vector KNN only.
    Vector,
    /// Both, fused by RRF.
    Hybrid,
}

impl std::str::FromStr for SearchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bm25" => Ok(Self::Bm25),
            "vector" => Ok(Self::Vector),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(format!(
                "unknown search mode {other:?} (bm25, vector or hybrid)"
            )),
        }
    }
}

/// A search request.
#[derive(Clone, Debug, Serialize)]
pub struct SearchQuery {
    /// What the user typed.
    pub text: String,
    /// Retriever(s).
    pub mode: SearchMode,
    /// Restrictions by source, platform, date.
    pub filter: SearchFilter,
    /// Results wanted.
    pub limit: usize,
}

impl SearchQuery {
    /// A hybrid query for `text` returning `limit` results.
    pub fn new(text: impl Into<String>, limit: usize) -> Self {
        Self {
            text: text.into(),
            mode: SearchMode::Hybrid,
            filter: SearchFilter::default(),
            limit,
        }
    }
}

/// One result.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct SearchResult {
    /// The chunk and its document.
    #[serde(flatten)]
    pub hit: ChunkHit,
    /// A short excerpt around the query terms.
    pub snippet: String,
    /// Fused score (RRF), or the single retriever's score.
    pub score: f64,
    /// 1-based rank in the BM25 list, if it appeared there.
    pub bm25_rank: Option<usize>,
    /// 1-based rank in the vector list, if it appeared there.
    pub vector_rank: Option<usize>,
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "my", "of", "on", "or", "the", "to", "what", "when", "where", "which",
    "why", "with", "you", "your",
];

/// The query's words, lower-cased and de-duplicated, stopwords dropped unless nothing else is left.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let content: Vec<String> = words
        .iter()
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .cloned()
        .collect();
    if content.is_empty() {
        words
    } else {
        content
    }
}

/// The FTS5 query a search runs for `text`: its terms, less those too common in this library
/// to tell chunks apart (see [`Store::selective_terms`]); when some were left out, also every
/// term as one phrase, so that a chunk holding the common word right by the rare one still
/// ranks first ("Struct Simd", "borrow.rs" in the Rust docs: the page found in the top 10 went
/// from 41 to 46 of 47 title queries, as with every term, at 5 ms instead of 70).
pub fn bm25_query(store: &Store, text: &str) -> Result<String, SearchError> {
    let terms = query_terms(text);
    let mut parts = store.selective_terms(terms.clone())?;
    if parts.len() < terms.len() {
        parts.push(terms.join(" "));
    }
    Ok(quoted_or(&parts))
}

/// An FTS5 query matching any of the terms; each is quoted so user input cannot inject syntax.
pub fn fts_query(text: &str) -> String {
    quoted_or(&query_terms(text))
}

fn quoted_or(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "")))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Fuse ranked lists by reciprocal rank fusion; returns ids by descending fused score.
pub fn reciprocal_rank_fusion(lists: &[&[ChunkId]], k: f64) -> Vec<(ChunkId, f64)> {
    let mut scores: HashMap<ChunkId, f64> = HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (k + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(ChunkId, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused
}

/// A window of about `width` characters around the first query term found in `text`.
pub fn snippet(text: &str, terms: &[String], width: usize) -> String {
    let lower = text.to_lowercase();
    let hit = terms
        .iter()
        .filter_map(|t| lower.find(t.as_str()))
        .min()
        .unwrap_or(0);
    // `lower` can differ in byte length from `text` for a few scripts; clamp to a char boundary.
    let mut start = hit.saturating_sub(width / 3).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    if start > 0 {
        // Past the whitespace character, whatever its width (U+0085 and U+3000 are not one
        // byte: fuzzing found `+ 1` landing inside one).
        start = text[start..]
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map_or(start, |(i, c)| start + i + c.len_utf8());
    }
    let mut end = (start + width).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    if end < text.len() {
        end = text[..end]
            .rfind(char::is_whitespace)
            .filter(|&e| e > start)
            .unwrap_or(end);
    }
    let body = text[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{}{}{}",
        if start > 0 { "…" } else { "" },
        body,
        if end < text.len() { "…" } else { "" }
    )
}

/// Run `query` against `store`; `embedder` is needed for vector and hybrid modes.
pub fn run(
    store: &Store,
    embedder: Option<&Embedder>,
    query: &SearchQuery,
) -> Result<Vec<SearchResult>, SearchError> {
    let vector = match (query.mode, embedder) {
        (SearchMode::Bm25, _) => None,
        (_, Some(e)) => {
            check_embedder(store, e)?;
            Some(e.embed(&[query.text.as_str()])?.pop().unwrap_or_default())
        }
        (_, None) => return Err(SearchError::NoEmbeddingModel),
    };
    run_embedded(store, query, vector.as_deref())
}

/// Fail unless the library's vectors were made by `embedder`: vectors of two models never mix.
pub fn check_embedder(store: &Store, embedder: &Embedder) -> Result<(), SearchError> {
    match store.embedding_model()? {
        Some(model) if model.hash != embedder.identity().hash => {
            Err(crate::store::StoreError::ModelMismatch {
                stored: model.name,
                requested: embedder.identity().name.clone(),
            }
            .into())
        }
        _ => Ok(()),
    }
}

/// [`run`] with the query's embedding already made (`None` for BM25): a draft embeds its topic
/// and every variant in one batch, and reuses the topic's vector to rank the fused list.
pub fn run_embedded(
    store: &Store,
    query: &SearchQuery,
    vector: Option<&[f32]>,
) -> Result<Vec<SearchResult>, SearchError> {
    let _span = tracing::info_span!("search", mode = ?query.mode).entered();
    let depth = (query.limit * 5).max(50);
    let bm25: Vec<(ChunkId, f64)> = if query.mode != SearchMode::Vector {
        store.search_bm25(&bm25_query(store, &query.text)?, &query.filter, depth)?
    } else {
        Vec::new()
    };
    let vector: Vec<(ChunkId, f64)> = match (query.mode, vector) {
        (SearchMode::Bm25, _) => Vec::new(),
        (_, Some(v)) => store.search_vector(v, &query.filter, depth)?,
        (_, None) => return Err(SearchError::NoEmbeddingModel),
    };
    let bm25_ids: Vec<ChunkId> = bm25.iter().map(|(id, _)| *id).collect();
    let vector_ids: Vec<ChunkId> = vector.iter().map(|(id, _)| *id).collect();
    let ranked: Vec<(ChunkId, f64)> = match query.mode {
        SearchMode::Bm25 => bm25.clone(),
        SearchMode::Vector => vector.iter().map(|(id, d)| (*id, 1.0 - d)).collect(),
        SearchMode::Hybrid => reciprocal_rank_fusion(&[&bm25_ids, &vector_ids], RRF_K),
    };
    let top: Vec<(ChunkId, f64)> = ranked.into_iter().take(query.limit).collect();
    let ids: Vec<ChunkId> = top.iter().map(|(id, _)| *id).collect();
    let terms = query_terms(&query.text);
    let scores: HashMap<ChunkId, f64> = top.into_iter().collect();
    let rank_of = |list: &[ChunkId], id: ChunkId| list.iter().position(|x| *x == id).map(|p| p + 1);
    Ok(store
        .chunk_hits(&ids)?
        .into_iter()
        .map(|hit| SearchResult {
            snippet: snippet(&hit.text, &terms, 220),
            score: scores.get(&hit.chunk_id).copied().unwrap_or_default(),
            bm25_rank: rank_of(&bm25_ids, hit.chunk_id),
            vector_rank: rank_of(&vector_ids, hit.chunk_id),
            hit,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Fusion keeps every id once, orders by score (ties by id), and each score is the
        /// sum of 1/(k + rank) over the lists the id appears in.
        #[test]
        fn rank_fusion_orders_by_the_summed_reciprocal_ranks(
            lists in prop::collection::vec(
                prop::collection::hash_set(0i64..50, 0..20)
                    .prop_map(|s| s.into_iter().collect::<Vec<_>>()),
                0..5,
            ),
            k in 1.0f64..100.0,
        ) {
            let refs: Vec<&[ChunkId]> = lists.iter().map(|l| l.as_slice()).collect();
            let fused = reciprocal_rank_fusion(&refs, k);
            let union: std::collections::HashSet<ChunkId> = lists.iter().flatten().copied().collect();
            prop_assert_eq!(fused.len(), union.len());
            for w in fused.windows(2) {
                prop_assert!(w[0].1 > w[1].1 || (w[0].1 == w[1].1 && w[0].0 < w[1].0));
            }
            for (id, score) in &fused {
                let expect: f64 = lists
                    .iter()
                    .filter_map(|l| l.iter().position(|x| x == id))
                    .map(|r| 1.0 / (k + r as f64 + 1.0))
                    .sum();
                prop_assert!((score - expect).abs() < 1e-12);
            }
            // An id first in every list is first overall.
            if lists.len() > 1 && lists.iter().all(|l| l.first() == lists[0].first() && !l.is_empty()) {
                prop_assert_eq!(fused[0].0, lists[0][0]);
            }
        }

        /// A query built from any text is safe to hand to FTS5 (see `fuzzing::fts_query`).
        #[test]
        fn any_text_makes_a_query_fts5_accepts(text in "\\PC{0,60}") {
            crate::fuzzing::fts_query(text.as_bytes());
        }
    }

    #[test]
    fn rrf_rewards_agreement() {
        let fused = reciprocal_rank_fusion(&[&[1, 2, 3], &[3, 1, 4]], RRF_K);
        assert_eq!(fused[0].0, 1);
        assert_eq!(fused[1].0, 3);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-12);
    }

    #[test]
    fn fts_query_is_quoted_and_drops_stopwords() {
        assert_eq!(
            fts_query("How do I use \"traits\" OR NOT?"),
            "\"use\" OR \"traits\" OR \"not\""
        );
        assert_eq!(fts_query("the"), "\"the\"");
    }

    #[test]
    fn snippet_steps_over_wide_spaces() {
        // U+0085 (NEL) and U+3000 are whitespace wider than a byte.
        for space in ['\u{85}', '\u{3000}', '\u{2009}'] {
            let text = format!("Ça coİoİstanbul{space}a{space}b more words about oak {space}end");
            let terms = vec!["oak".to_string()];
            let s = snippet(&text, &terms, 12);
            assert!(s.contains("oak"), "{s}");
        }
    }

    #[test]
    fn snippet_centres_on_terms() {
        let text = "a ".repeat(200) + "ownership rules matter " + &"b ".repeat(200);
        let s = snippet(&text, &["ownership".to_string()], 60);
        assert!(
            s.contains("ownership") && s.starts_with('…') && s.ends_with('…'),
            "{s}"
        );
    }
}
