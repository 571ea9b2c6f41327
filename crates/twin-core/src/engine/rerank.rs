//! Relevance scores from a GGUF reranker: a BERT cross-encoder with a classification head, run
//! by llama.cpp with rank pooling (the head on `[CLS]` gives one logit per query–document pair).
//!
//! It shares the embedding model's worker, batching and guards ([`Embedder`]); only the input
//! (a pair, `[CLS] query [SEP] document [SEP]`) and the pooled output (a raw score) differ.
//! llama.cpp's BERT adds the first token-type embedding to every token, so the document segment
//! is not marked as a second segment the way Hugging Face's cross-encoders mark it; rankings
//! stay close, scores differ slightly from the original's.

use super::embed::{Embedder, EmbedderConfig, Pooled};
use super::EngineError;
use std::path::Path;

/// A loaded reranker.
#[derive(Debug)]
pub struct Reranker {
    encoder: Embedder,
}

impl Reranker {
    /// Load the GGUF reranker at `path`; an embedding or chat model is refused by name.
    pub fn load(path: &Path, config: &EmbedderConfig) -> Result<Self, EngineError> {
        Ok(Self {
            encoder: Embedder::load_pooled(path, config, Pooled::Rank)?,
        })
    }

    /// The GGUF file it was loaded from.
    pub fn path(&self) -> &Path {
        self.encoder.path()
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.encoder.identity().name
    }

    /// How relevant each document is to `query` (a logit: higher is more relevant), in order.
    pub fn score(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>, EngineError> {
        let pairs = documents
            .iter()
            .map(|d| self.encoder.pair_tokens(query, d))
            .collect();
        self.encoder
            .run(pairs)?
            .into_iter()
            .map(|v| {
                v.first()
                    .copied()
                    .ok_or_else(|| EngineError::Runtime("the reranker returned no score".into()))
            })
            .collect()
    }
}
