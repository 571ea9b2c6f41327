//! Drafting: the inference pipeline. A topic goes in; a post, thread, article or newsletter in
//! the user's voice comes out, grounded in their writing, streamed, with citations and a trace.
//!
//! The chain, every step local:
//! 1. **self-query** (grammar-constrained JSON): platform and date filters named in the request;
//! 2. **query expansion** (grammar-constrained JSON): N alternative queries;
//! 3. **retrieval**: hybrid search per query, fused by RRF, then MMR under a token budget;
//! 4. **voice**: the style card and the user's most representative pieces of the format;
//! 5. **writing**, by the chain the model's profile picks ([`profile`]): one grounded pass
//!    (small models), outline → draft, or outline → draft → self-critique → revise (large
//!    models; `draft_only` stops after the draft); a small model's post outline is the
//!    author's own sentences on the topic (`points`), not a plan it writes; articles are
//!    planned as a title plus sections (grammar-constrained) and written section by section;
//! 6. **shaping**: fragments merged or dropped, markup and citation markers removed, length
//!    caps, threads split into posts of at most 280 characters ([`tidy`]);
//! 7. **citations** per paragraph and near-repeat warnings;
//! 8. **health**: the checks of [`health`]; the run is stored as a trace.
//!
//! The system prompt (style card, exemplars, context) is identical for every generation step,
//! so the engine's KV cache reuses it and only each step's instruction is evaluated anew.

mod article;
pub mod cite;
pub mod edits;
mod gather;
mod ground;
pub mod health;
pub mod ideas;
mod markdown;
mod points;
pub mod profile;
pub mod retrieve;
pub mod style;
pub mod tidy;
mod write;

pub use crate::prompt::format::{Format, LengthTarget};
pub use crate::prompt::templates::{TemplateUse, Templates};
use crate::prompt::{format, grammar, templates, PromptError};
pub use cite::Paragraph;
pub use ground::{ground, Grounding};
pub use markdown::markdown;
pub use profile::Chain;
pub use style::{StyleCard, STYLE_CARD_SETTING};

use crate::engine::{
    ChatMessage, ChatModel, EngineError, FinishReason, GenerateRequest, GenerationStats, Sampling,
};
use crate::library::{Library, LibraryError};
use crate::progress::CancelToken;
use crate::prompt::structured;
use crate::store::{ChunkHit, RunStatus, SearchFilter, StoreError, TraceId, TraceRecord};
use article::*;
use gather::*;
use grammar::{ArticlePlan, Expansion, SelfQuery};
use retrieve::ContextChunk;
use serde::Serialize;
use std::time::Instant;
use write::*;

mod prepared;
mod run;
pub use prepared::*;
use run::*;

/// Errors from drafting.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The library failed (embeddings, the reranker).
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// A search failed.
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),
    /// The chat model failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model registry failed (resolving the reranker).
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    /// A prompt template is broken, or a structured step answered malformed JSON.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// The library holds nothing to draw on.
    #[error("the library is empty; import some writing first (twin import <folder>)")]
    EmptyLibrary,
    /// The user cancelled; the partial run is stored as a trace.
    #[error("cancelled")]
    Cancelled,
}

crate::error::classify!(DraftError {
    kind: Self::Cancelled => Cancelled, Self::EmptyLibrary => NeedsSetup;
    inner: Library, Search, Engine, Store, Model, Prompt;
});

/// What to draft and how.
#[derive(Clone, Debug, Serialize)]
pub struct DraftRequest {
    /// What the piece is about.
    pub topic: String,
    /// The output format.
    pub format: Format,
    /// The chain of writing steps; `None`: the model profile's default (see [`profile`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain>,
    /// Skip self-critique and revision, whatever the chain.
    pub draft_only: bool,
    /// Ground the draft in the library (off: style card only, for comparisons).
    pub retrieval: bool,
    /// Alternative queries written by the model (0 = search the topic only; `None`: the
    /// model's profile, see [`profile::for_parameters`]).
    pub expansions: Option<usize>,
    /// Extract platform and date filters from the topic with the model.
    pub self_query: bool,
    /// Retrieved passages in the prompt at most (`None`: the model's profile, see
    /// [`profile::for_parameters`]).
    pub context_chunks: Option<usize>,
    /// Context size in the chat model's tokens at most.
    pub context_tokens: usize,
    /// Few-shot exemplars of the format.
    pub exemplars: usize,
    /// Reorder the retrieved candidates with the configured reranker model, if there is one.
    pub rerank: bool,
    /// Sampling for the writing steps (structured steps are greedy).
    pub sampling: Sampling,
    /// Strength of the loaded LoRA adapter (0 = base model).
    pub adapter_scale: f32,
    /// Author's name as the prompts use it.
    pub author: String,
    /// Documents (paths) kept out of the context and the exemplars: evaluation drafts on
    /// held-out topics without letting the model copy the held-out text.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_documents: Vec<String>,
}

impl DraftRequest {
    /// Defaults for `topic` in `format`.
    pub fn new(topic: impl Into<String>, format: Format) -> Self {
        Self {
            topic: topic.into(),
            format,
            chain: None,
            draft_only: false,
            retrieval: true,
            expansions: None,
            self_query: true,
            context_chunks: None,
            context_tokens: 900,
            exemplars: 2,
            rerank: true,
            sampling: Sampling::drafting(),
            adapter_scale: 0.0,
            author: "the author".into(),
            exclude_documents: Vec::new(),
        }
    }

    /// The model profile's defaults for this request's format, on a model of `parameters`.
    fn defaults(&self, parameters: u64) -> profile::FormatDefaults {
        profile::for_parameters(parameters).for_format(self.format)
    }

    /// Whether the plan of this request's draft, on a model of `parameters`, is the author's own
    /// sentences on the topic (an outlining chain whose profile says so; articles have their
    /// own plan of headings).
    pub fn own_points_for(&self, parameters: u64) -> bool {
        self.format != Format::Article
            && self.retrieval
            && self.chain_for(parameters).outlines()
            && self.defaults(parameters).own_points
    }

    /// Alternative queries the model writes for this request, on a model of `parameters`.
    pub fn expansions_for(&self, parameters: u64) -> usize {
        self.expansions
            .unwrap_or_else(|| self.defaults(parameters).expansions)
    }

    /// Retrieved passages the prompt holds at most for this request, on a model of `parameters`.
    pub fn context_chunks_for(&self, parameters: u64) -> usize {
        self.context_chunks
            .unwrap_or_else(|| self.defaults(parameters).context_chunks)
    }

    /// The chain this request runs on a model of `parameters` parameters.
    pub fn chain_for(&self, parameters: u64) -> Chain {
        let chain = self
            .chain
            .unwrap_or_else(|| self.defaults(parameters).chain);
        if self.draft_only && chain == Chain::Full {
            Chain::Outlined
        } else {
            chain
        }
    }

    fn excludes(&self, hit: &ChunkHit) -> bool {
        !self.exclude_documents.is_empty()
            && self
                .exclude_documents
                .iter()
                .any(|d| std::path::Path::new(d) == hit.path)
    }
}

/// Progress of a draft, for streaming UIs.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum DraftEvent {
    /// A chain step started.
    Step {
        /// Step name (`self_query`, `expand`, `retrieve`, `outline`, `draft`, `critique`, `revise`, `section`).
        name: String,
    },
    /// Text generated by the current step.
    Text {
        /// Step name.
        step: String,
        /// The new text.
        text: String,
    },
    /// The draft as it stands, shaped: the best text written so far (a post that was
    /// checked, or a long text's parts so far). The final draft is this text unless a later
    /// step writes a better one; a streaming UI shows it in place of the raw text it streamed.
    Preview {
        /// The shaped text.
        text: String,
    },
    /// The context was chosen.
    Context {
        /// What the draft will draw on.
        citations: Vec<Citation>,
    },
}

/// A source the draft drew on.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Citation {
    /// 1-based number, as paragraphs refer to it.
    pub n: usize,
    /// The chunk.
    pub chunk_id: i64,
    /// Its document.
    pub document_id: i64,
    /// Document title.
    pub title: String,
    /// Document file.
    pub path: String,
    /// Headings above the chunk.
    pub heading_path: String,
    /// Platform of the document.
    pub platform: Option<String>,
    /// Date of the document.
    pub date: Option<String>,
    /// An excerpt.
    pub snippet: String,
    /// Retrieval score: fused RRF, or the reranker's logit when a reranker ordered the context.
    pub score: f64,
}

/// One generation step of the chain, for traces.
#[derive(Clone, Debug, Serialize)]
pub struct StepTrace {
    /// Step name.
    pub name: String,
    /// Template that produced its instruction.
    pub template: String,
    /// What the model wrote.
    pub output: String,
    /// Why it stopped.
    pub finish: FinishReason,
    /// Timings and counts.
    pub stats: GenerationStats,
}

/// Timings of a run.
#[derive(Clone, Debug, Default, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct DraftTimings {
    /// Self-query step, ms.
    pub self_query_ms: f64,
    /// Query expansion step, ms.
    pub expand_ms: f64,
    /// Hybrid searches and fusion, ms.
    pub search_ms: f64,
    /// Reranking the candidates (0 without a reranker), ms.
    pub rerank_ms: f64,
    /// MMR, exemplars and style card, ms.
    pub select_ms: f64,
    /// Everything before the first writing step, ms (near 0 for a prepared draft).
    pub retrieval_ms: f64,
    /// For a prepared draft: how long [`prepare`] worked before the request, ms (else 0).
    pub prepared_ahead_ms: f64,
    /// From the request to the first token of the first writing step, ms.
    pub first_token_ms: f64,
    /// Generated tokens per second over the writing steps.
    pub tokens_per_second: f64,
    /// Citation and near-repeat checks, ms.
    pub cite_ms: f64,
    /// The whole run, ms.
    pub total_ms: f64,
}

/// A finished draft.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Draft {
    /// The final text.
    pub text: String,
    /// Format.
    pub format: Format,
    /// For threads: the posts, each at most 280 characters.
    pub posts: Vec<String>,
    /// Words in the text.
    pub words: usize,
    /// Paragraphs with their nearest sources.
    pub paragraphs: Vec<Paragraph>,
    /// Everything the draft drew on.
    pub citations: Vec<Citation>,
    /// Near-repeats of the user's published writing.
    pub warnings: Vec<String>,
    /// Draft health: fragments, loops, copying, leftovers, format, topic, invented specifics.
    pub health: health::Health,
    /// The stored trace.
    pub trace_id: TraceId,
    /// Timings.
    pub timings: DraftTimings,
}

/// Draft `request` with `model` on `library`, streaming events through `on_event`.
pub fn draft(
    library: &mut Library,
    model: &ChatModel,
    request: &DraftRequest,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(DraftEvent),
) -> Result<Draft, DraftError> {
    draft_with(library, model, request, None, cancel, on_event)
}

/// [`draft`], starting from `prepared` (see [`prepare`]) when it was made for this request on
/// the library as it is now; otherwise, or without one, the whole chain runs.
pub fn draft_with(
    library: &mut Library,
    model: &ChatModel,
    request: &DraftRequest,
    prepared: Option<Prepared>,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(DraftEvent),
) -> Result<Draft, DraftError> {
    let _span = tracing::info_span!("draft", format = ?request.format).entered();
    let prepared = match prepared {
        Some(p) if p.matches(library, request)? => Some(p),
        _ => None,
    };
    let mut run = start_run(library, model, request, cancel, on_event)?;
    let gathered = prepared.map(|p| {
        run.detail = TraceDetail {
            request: run.detail.request.take(),
            model: std::mem::take(&mut run.detail.model),
            prepared: true,
            ..p.detail
        };
        run.detail.timings.prepared_ahead_ms = p.ahead_ms;
        p.gathered
    });
    let result = run_chain(library, &mut run, gathered);
    let status = match &result {
        Ok(_) => RunStatus::Done,
        Err(DraftError::Cancelled) => RunStatus::Cancelled,
        Err(e) => {
            run.detail.error = Some(e.to_string());
            RunStatus::Failed
        }
    };
    run.detail.timings.total_ms = ms(run.started);
    let output = result.as_ref().map(|d| d.text.clone()).unwrap_or_else(|_| {
        run.detail
            .steps
            .last()
            .map(|s| s.output.clone())
            .unwrap_or_default()
    });
    let info = model.info();
    let trace = TraceRecord {
        id: 0,
        created_at: 0,
        kind: "draft".into(),
        status,
        topic: request.topic.clone(),
        format: request.format.platform().into(),
        model: info.name.clone(),
        adapter: info
            .adapter
            .as_ref()
            .filter(|_| request.adapter_scale != 0.0)
            .map(|a| format!("{}@{}", a.display(), request.adapter_scale)),
        output,
        detail: serde_json::to_value(&run.detail).unwrap_or_default(),
    };
    let trace_id = library.store().put_trace(&trace)?;
    result.map(|mut d| {
        d.trace_id = trace_id;
        d.timings = run.detail.timings.clone();
        d
    })
}

#[cfg(test)]
mod tests;
