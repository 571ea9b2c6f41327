//! Sentence embeddings with a GGUF embedding model (BERT family, mean pooling) through llama.cpp.
//!
//! llama.cpp has process-killing asserts rather than errors on two inputs, so this module guards
//! both before every call: a batch whose tokens exceed `n_ubatch`, and a sequence longer than the
//! model's position table. Sequences are truncated to `max_tokens` with `[SEP]` kept last, as
//! sentence-transformers does. Vectors come back L2-normalised (llama.cpp does not normalise).
//!
//! A dedicated worker thread owns the llama.cpp context (which borrows the model, so it cannot
//! live in the same struct), so embedding never runs on the caller's UI or async thread and the
//! context is created once, not per batch. Tokenisation runs on the caller's thread: the model is
//! `Sync` and tokenising is read-only.

use super::backend::{backend, default_gpu_layers};
use super::EngineError;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

/// How to run the embedding model.
#[derive(Clone, Debug)]
pub struct EmbedderConfig {
    /// CPU threads for llama.cpp.
    pub threads: usize,
    /// Layers to offload to the GPU (`u32::MAX` for all); ignored on CPU-only builds.
    pub gpu_layers: u32,
    /// Tokens packed into one llama.cpp batch. On CPU 256–1024 measured alike and 2048 a third
    /// slower (`twin bench library`): attention cost grows with the tokens of the whole batch.
    /// GPU builds default to 4096 (not measured here: no GPU was lent).
    pub batch_tokens: usize,
    /// Sequences packed into one batch at most.
    pub max_sequences: usize,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        let gpu_layers = default_gpu_layers();
        // A GPU has the opposite trade-off: it wants many sequences per launch.
        let on_gpu = gpu_layers > 0;
        Self {
            threads: super::default_threads(),
            gpu_layers,
            batch_tokens: if on_gpu { 4096 } else { 512 },
            max_sequences: if on_gpu { 64 } else { 16 },
        }
    }
}

/// Identifies an embedding model exactly, so the store can refuse to mix vectors of two models.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ModelIdentity {
    /// Human-readable name (`general.name`, else the file stem).
    pub name: String,
    /// blake3 of the GGUF file: two files with the same name but other weights differ here.
    pub hash: String,
    /// Vector width.
    pub dim: usize,
}

type Job = (
    Vec<Vec<LlamaToken>>,
    mpsc::Sender<Result<Vec<Vec<f32>>, EngineError>>,
);

/// What an encoder model's pooled output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pooled {
    /// A sentence embedding (mean pooling), L2-normalised.
    Embedding,
    /// A relevance score: the classification head on `[CLS]` (llama.cpp's rank pooling).
    Rank,
}

/// A loaded embedding model.
pub struct Embedder {
    model: Arc<LlamaModel>,
    path: PathBuf,
    identity: ModelIdentity,
    max_tokens: usize,
    sep: LlamaToken,
    jobs: super::worker::Worker<Job>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .finish()
    }
}

fn hash_file(path: &Path) -> Result<String, EngineError> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap(path).map_err(|e| EngineError::Load {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(hasher.finalize().to_hex().to_string())
}

impl Embedder {
    /// Load the GGUF embedding model at `path`.
    pub fn load(path: &Path, config: &EmbedderConfig) -> Result<Self, EngineError> {
        Self::load_pooled(path, config, Pooled::Embedding)
    }

    /// Load an encoder whose pooled output is `pooled`; rerankers share everything else.
    pub(crate) fn load_pooled(
        path: &Path,
        config: &EmbedderConfig,
        pooled: Pooled,
    ) -> Result<Self, EngineError> {
        let _span = tracing::info_span!("load_embedder", path = %path.display()).entered();
        let load_err = |reason: String| EngineError::Load {
            path: path.to_path_buf(),
            reason,
        };
        let header = super::validate_gguf(path)?;
        let backend = backend()?;
        let params = LlamaModelParams::default().with_n_gpu_layers(config.gpu_layers);
        let model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| load_err(format!("llama.cpp could not load it ({e})")))?;
        let wrong = |reason: &str| EngineError::WrongKind {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        let arch = header.architecture.unwrap_or_default();
        if model.meta_val_str(&format!("{arch}.pooling_type")).is_err() {
            return Err(wrong(
                "not an embedding model (no pooling type); import one with `twin models import`",
            ));
        }
        match (pooled, header.has_classifier) {
            (Pooled::Embedding, true) => {
                return Err(wrong(
                    "a reranker (it has a classification head), not an embedding model; add it with `twin models add`",
                ))
            }
            (Pooled::Rank, false) => {
                return Err(wrong(
                    "not a reranker (no classification head): an embedding model",
                ))
            }
            _ => {}
        }
        let dim = usize::try_from(model.n_embd()).unwrap_or(0);
        let n_ctx_train = model.n_ctx_train() as usize;
        let max_tokens = model
            .meta_val_str("twin.max_tokens")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256usize)
            .min(n_ctx_train)
            .min(config.batch_tokens);
        let sep = model.vocab().sep();
        let identity = ModelIdentity {
            name: header.name.unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            hash: hash_file(path)?,
            dim,
        };
        let model = Arc::new(model);
        let jobs = spawn_worker(Arc::clone(&model), config.clone(), pooled)?;
        Ok(Self {
            model,
            path: path.to_path_buf(),
            identity,
            max_tokens,
            sep,
            jobs,
        })
    }

    /// The model's identity (name, file hash, dimension).
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The GGUF file this embedder was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Longest input, in tokens including `[CLS]` and `[SEP]`, before truncation.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokens `text` takes in this model's vocabulary, without special tokens.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, false)
            .len()
    }

    /// Token ids for `text` with `[CLS]`/`[SEP]`, truncated to [`Self::max_tokens`].
    pub fn token_ids(&self, text: &str) -> Vec<i32> {
        self.tokenize(text).into_iter().map(|t| t.0).collect()
    }

    fn tokenize(&self, text: &str) -> Vec<LlamaToken> {
        self.tokenize_within(text, self.max_tokens)
    }

    /// `[CLS] text [SEP]`, cut to `limit` tokens with `[SEP]` kept last.
    fn tokenize_within(&self, text: &str, limit: usize) -> Vec<LlamaToken> {
        let mut tokens = self.model.vocab().tokenize(text.as_bytes(), true, false);
        if tokens.len() > limit.max(2) {
            tokens.truncate(limit.max(2) - 1);
            tokens.push(self.sep);
        }
        tokens
    }

    /// A cross-encoder input, `[CLS] query [SEP] document [SEP]`, within [`Self::max_tokens`]:
    /// the query keeps at most half, the document is cut to fit the rest.
    pub(crate) fn pair_tokens(&self, query: &str, document: &str) -> Vec<LlamaToken> {
        let mut tokens = self.tokenize_within(query, self.max_tokens / 2);
        let room = self.max_tokens.saturating_sub(tokens.len() + 1);
        let doc = self
            .model
            .vocab()
            .tokenize(document.as_bytes(), false, false);
        tokens.extend(doc.into_iter().take(room));
        tokens.push(self.sep);
        tokens
    }

    /// Embed `texts`, returning one L2-normalised vector per text, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EngineError> {
        self.submit(texts)?.wait()
    }

    /// Queue `texts` on the worker and return at once: the caller reads, writes or tokenises
    /// the next batch while this one is embedded (the import pipeline keeps one batch in flight
    /// so the embedder never waits for SQLite).
    pub fn submit(&self, texts: &[&str]) -> Result<PendingEmbedding, EngineError> {
        let tokens: Vec<Vec<LlamaToken>> = texts.iter().map(|t| self.tokenize(t)).collect();
        self.start(tokens)
    }

    /// The pooled output of every token sequence, in order, on the worker thread.
    pub(crate) fn run(&self, tokens: Vec<Vec<LlamaToken>>) -> Result<Vec<Vec<f32>>, EngineError> {
        self.start(tokens)?.wait()
    }

    fn start(&self, tokens: Vec<Vec<LlamaToken>>) -> Result<PendingEmbedding, EngineError> {
        let count = tokens.iter().map(Vec::len).sum();
        let (reply, response) = mpsc::channel();
        if tokens.is_empty() {
            let _ = reply.send(Ok(Vec::new()));
        } else {
            self.jobs.send((tokens, reply))?;
        }
        Ok(PendingEmbedding {
            tokens: count,
            response,
        })
    }
}

/// A batch queued on the embedding worker ([`Embedder::submit`]).
pub struct PendingEmbedding {
    tokens: usize,
    response: mpsc::Receiver<Result<Vec<Vec<f32>>, EngineError>>,
}

impl PendingEmbedding {
    /// Tokens the batch embeds (with `[CLS]`/`[SEP]`, after truncation).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Wait for the vectors, in the order of the texts.
    pub fn wait(self) -> Result<Vec<Vec<f32>>, EngineError> {
        self.response.recv().map_err(|_| EngineError::WorkerGone)?
    }
}

/// The llama.cpp context an encoder runs in. The context is one batch long: an encoder keeps
/// no KV cache, every batch is evaluated whole (`n_ubatch = n_batch`), and llama.cpp's per-
/// sequence share of the context (`n_ctx / n_seq_max`) bounds nothing for it (positions come
/// from each sequence's own table). Wave 1 sized it `max_sequences × batch_tokens` (8,192
/// tokens), which only made llama.cpp reserve a larger graph and output buffer.
fn context_params(config: &EmbedderConfig, pooled: Pooled) -> LlamaContextParams {
    let threads = super::llama_threads(config.threads);
    let n = config.batch_tokens.max(8) as u32;
    LlamaContextParams::default()
        .with_embeddings(true)
        .with_pooling_type(match pooled {
            Pooled::Embedding => LlamaPoolingType::Mean,
            Pooled::Rank => LlamaPoolingType::Rank,
        })
        .with_n_ctx(NonZeroU32::new(n))
        .with_n_batch(n)
        // Non-causal models must fit a whole batch in one ubatch (llama.cpp asserts).
        .with_n_ubatch(n)
        .with_n_seq_max(config.max_sequences.max(1) as u32)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

/// Timings of [`bare_embed`].
#[derive(Clone, Debug)]
pub struct BareEmbed {
    /// Tokens embedded (after truncation, with `[CLS]`/`[SEP]`).
    pub tokens: usize,
    /// Seconds of the fastest repetition.
    pub seconds: f64,
}

/// The reference `twin bench library` measures the import pipeline against: llama.cpp's own
/// encode loop on `texts` with `config`'s layout, on `embedder`'s weights in a context of its
/// own (no worker thread or channel, tokenised before the clock starts), fastest of `reps`
/// repetitions.
pub fn bare_embed(
    embedder: &Embedder,
    texts: &[&str],
    config: &EmbedderConfig,
    reps: usize,
) -> Result<BareEmbed, EngineError> {
    let sequences: Vec<Vec<LlamaToken>> = texts.iter().map(|t| embedder.tokenize(t)).collect();
    let tokens = sequences.iter().map(Vec::len).sum();
    let mut ctx = embedder
        .model
        .new_context(backend()?, context_params(config, Pooled::Embedding))
        .map_err(|e| EngineError::Runtime(format!("creating the embedding context: {e}")))?;
    let seqs = config.max_sequences.max(1);
    let mut batch = LlamaBatch::new(config.batch_tokens, seqs as i32);
    let mut seconds = f64::MAX;
    for _ in 0..reps.max(1) {
        let started = std::time::Instant::now();
        embed_all(
            &mut ctx,
            &mut batch,
            &sequences,
            config.batch_tokens,
            seqs,
            Pooled::Embedding,
        )?;
        seconds = seconds.min(started.elapsed().as_secs_f64());
    }
    Ok(BareEmbed { tokens, seconds })
}

fn spawn_worker(
    model: Arc<LlamaModel>,
    config: EmbedderConfig,
    pooled: Pooled,
) -> Result<super::worker::Worker<Job>, EngineError> {
    super::worker::Worker::spawn("twin-embed", move |inbox: mpsc::Receiver<Job>, ready_tx| {
        let params = context_params(&config, pooled);
        let seqs = config.max_sequences.max(1) as i32;
        let backend = match backend() {
            Ok(b) => b,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let mut ctx = match model.new_context(backend, params) {
            Ok(ctx) => ctx,
            Err(e) => {
                let _ = ready_tx.send(Err(EngineError::Runtime(format!(
                    "creating the embedding context: {e}"
                ))));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let mut batch = LlamaBatch::new(config.batch_tokens, seqs);
        for (sequences, reply) in inbox {
            let result = embed_all(
                &mut ctx,
                &mut batch,
                &sequences,
                config.batch_tokens,
                seqs as usize,
                pooled,
            );
            let _ = reply.send(result);
        }
    })
}

fn embed_all(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    batch: &mut LlamaBatch,
    sequences: &[Vec<LlamaToken>],
    batch_tokens: usize,
    max_sequences: usize,
    pooled: Pooled,
) -> Result<Vec<Vec<f32>>, EngineError> {
    let mut out = Vec::with_capacity(sequences.len());
    let mut next = 0;
    while next < sequences.len() {
        batch.clear();
        let start = next;
        let mut used = 0;
        while next < sequences.len()
            && used + sequences[next].len() <= batch_tokens
            && next - start < max_sequences
        {
            let seq_id = i32::try_from(next - start).unwrap_or(0);
            batch
                .add_sequence(&sequences[next], seq_id, true)
                .map_err(|e| EngineError::Runtime(e.to_string()))?;
            used += sequences[next].len();
            next += 1;
        }
        if next == start {
            // Cannot happen: tokenize() truncates to max_tokens <= batch_tokens. Guarded anyway,
            // because the alternative is llama.cpp aborting the process.
            return Err(EngineError::Runtime(
                "a sequence is longer than the batch".into(),
            ));
        }
        ctx.decode(batch)
            .map_err(|e| EngineError::Runtime(e.to_string()))?;
        for i in 0..(next - start) {
            let v = ctx
                .embeddings_seq_ith(i32::try_from(i).unwrap_or(0))
                .map_err(|e| EngineError::Runtime(e.to_string()))?;
            out.push(match pooled {
                Pooled::Embedding => l2_normalized(v),
                Pooled::Rank => v.to_vec(),
            });
        }
    }
    Ok(out)
}

fn l2_normalized(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / norm).collect()
}
