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
//!    models; `draft_only` stops after the draft); articles are planned as a title plus
//!    sections (grammar-constrained) and written section by section;
//! 6. **shaping**: fragments merged or dropped, markup and citation markers removed, length
//!    caps, threads split into posts of at most 280 characters ([`tidy`]);
//! 7. **citations** per paragraph and near-repeat warnings;
//! 8. **health**: the checks of [`health`]; the run is stored as a trace.
//!
//! The system prompt (style card, exemplars, context) is identical for every generation step,
//! so the engine's KV cache reuses it and only each step's instruction is evaluated anew.

pub mod cite;
pub mod health;
pub mod profile;
pub mod retrieve;
pub mod style;
pub mod tidy;

pub use crate::prompt::format::{Format, LengthTarget};
pub use crate::prompt::templates::{TemplateUse, Templates};
use crate::prompt::{format, grammar, templates, PromptError};
pub use cite::Paragraph;
pub use profile::Chain;
pub use style::{StyleCard, STYLE_CARD_SETTING};

use crate::engine::{
    ChatMessage, ChatModel, EngineError, FinishReason, GenerateRequest, GenerationStats, Sampling,
};
use crate::library::{Library, LibraryError};
use crate::progress::CancelToken;
use crate::prompt::structured;
use crate::store::{ChunkHit, SearchFilter, StoreError, TraceId, TraceRecord};
use grammar::{ArticlePlan, Expansion, SelfQuery};
use retrieve::ContextChunk;
use serde::Serialize;
use std::time::Instant;

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
    /// Alternative queries written by the model (0 = search the topic only).
    pub expansions: usize,
    /// Extract platform and date filters from the topic with the model.
    pub self_query: bool,
    /// Context chunks at most.
    pub context_chunks: usize,
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
            expansions: 3,
            self_query: true,
            context_chunks: 6,
            context_tokens: 900,
            exemplars: 2,
            rerank: true,
            sampling: Sampling::drafting(),
            adapter_scale: 0.0,
            author: "the author".into(),
            exclude_documents: Vec::new(),
        }
    }

    /// The chain this request runs on a model of `parameters` parameters.
    pub fn chain_for(&self, parameters: u64) -> Chain {
        let chain = self
            .chain
            .unwrap_or_else(|| profile::for_parameters(parameters).chain);
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
    /// The context was chosen.
    Context {
        /// What the draft will draw on.
        citations: Vec<Citation>,
    },
}

/// A source the draft drew on.
#[derive(Clone, Debug, Serialize)]
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
#[derive(Clone, Debug, Default, Serialize)]
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
#[derive(Clone, Debug, Serialize)]
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

/// Everything a run records, stored as the trace's detail.
#[derive(Clone, Debug, Default, Serialize)]
struct TraceDetail {
    request: Option<DraftRequest>,
    /// The retrieval steps ran ahead of the request (see [`prepare`]).
    prepared: bool,
    templates: Vec<TemplateUse>,
    style_card: String,
    self_query: Option<SelfQuery>,
    filter: SearchFilter,
    filter_dropped: bool,
    queries: Vec<String>,
    /// The reranker model that ordered the candidates, if one did.
    reranker: Option<String>,
    exemplar_chunks: Vec<i64>,
    citations: Vec<Citation>,
    steps: Vec<StepTrace>,
    paragraphs: Vec<Paragraph>,
    warnings: Vec<String>,
    health: Option<health::Health>,
    /// The chain that wrote the draft.
    chain: Option<Chain>,
    /// Texts written again because the earlier ones failed their checks.
    retries: u32,
    timings: DraftTimings,
    model: serde_json::Value,
    error: Option<String>,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Runs one draft; holds what the steps share.
struct Run<'a> {
    model: &'a ChatModel,
    templates: Templates,
    request: &'a DraftRequest,
    cancel: &'a CancelToken,
    on_event: &'a mut dyn FnMut(DraftEvent),
    detail: TraceDetail,
    started: Instant,
    /// The last step's rendered instruction, to strip echoes of it from the output.
    last_instruction: String,
}

impl Run<'_> {
    /// The values a step's template sees: the shared ones, overridden by the step's `extra`
    /// (a section's word count).
    fn ctx(&self, extra: &minijinja::Value) -> minijinja::Value {
        let length = self.request.format.length();
        templates::layered(&[
            &minijinja::context! {
                topic => self.request.topic,
                author => self.request.author,
                format_name => self.request.format.display_name(),
                words => length.target_words,
                rules => self.request.format.rules(),
            },
            extra,
        ])
    }

    fn record_template(&mut self, name: &str) {
        if let Some(u) = self.templates.describe(name) {
            if !self.detail.templates.iter().any(|t| t.name == u.name) {
                self.detail.templates.push(u.clone());
            }
        }
    }

    /// The request of one step: `system`, then the rendered `template` as the user's turn.
    fn step_request(
        &self,
        system: &str,
        template: &str,
        extra: minijinja::Value,
        request: GenerateRequest,
    ) -> Result<GenerateRequest, DraftError> {
        let instruction = self.templates.render(template, self.ctx(&extra))?;
        Ok(GenerateRequest {
            messages: vec![ChatMessage::system(system), ChatMessage::user(instruction)],
            ..request
        })
    }

    /// One generation step: `system` + the rendered `template`, streamed as `step`.
    fn generate(
        &mut self,
        step: &str,
        system: &str,
        template: &str,
        extra: minijinja::Value,
        request: GenerateRequest,
    ) -> Result<String, DraftError> {
        if self.cancel.is_cancelled() {
            return Err(DraftError::Cancelled);
        }
        // What the reply may not repeat back: a revision that keeps a sentence of its draft is
        // not echoing the prompt.
        self.last_instruction = echo_source(&self.templates, template, &self.ctx(&extra))?;
        let request = self.step_request(system, template, extra, request)?;
        self.record_template(template);
        (self.on_event)(DraftEvent::Step { name: step.into() });
        let step_started = ms(self.started);
        let on_event = &mut self.on_event;
        let generation = self.model.generate(&request, self.cancel, &mut |text| {
            on_event(DraftEvent::Text {
                step: step.into(),
                text: text.into(),
            })
        })?;
        if self.detail.timings.first_token_ms == 0.0 && request.grammar.is_none() {
            self.detail.timings.first_token_ms = step_started + generation.stats.first_token_ms;
        }
        self.detail.steps.push(StepTrace {
            name: step.into(),
            template: template.into(),
            output: generation.text.clone(),
            finish: generation.finish,
            stats: generation.stats,
        });
        if generation.finish == FinishReason::Cancelled {
            return Err(DraftError::Cancelled);
        }
        if request.grammar.is_some() {
            return Ok(generation.text.trim().to_string());
        }
        Ok(
            format::drop_echoes(&generation.text, &self.last_instruction)
                .trim()
                .to_string(),
        )
    }

    /// A grammar-constrained step, parsed into `T`.
    fn structured<T: serde::de::DeserializeOwned>(
        &mut self,
        step: &'static str,
        template: &str,
        extra: minijinja::Value,
        grammar: String,
        max_tokens: usize,
    ) -> Result<T, DraftError> {
        let system = self
            .templates
            .render("json_system", minijinja::context! {})?;
        self.record_template("json_system");
        let text = self.generate(
            step,
            &system,
            template,
            extra,
            structured::request(grammar, max_tokens),
        )?;
        Ok(structured::parse(step, &text)?)
    }

    fn writing_request(&self, words: (usize, usize)) -> GenerateRequest {
        // About 1.4 tokens per English word with small-model vocabularies.
        GenerateRequest {
            max_tokens: words.1 * 14 / 10 + 16,
            min_words: words.0,
            sampling: self.request.sampling.clone(),
            adapter_scale: self.request.adapter_scale,
            stop: vec!["<|im_end|>".into(), "\n\n\n\n".into()],
            penalize_prompt: true,
            ..Default::default()
        }
    }
}

/// `template` rendered with `ctx` but without the earlier steps' output it quotes (outline,
/// draft, critique): the instructions a step's reply may not echo.
fn echo_source(
    templates: &Templates,
    template: &str,
    ctx: &minijinja::Value,
) -> Result<String, DraftError> {
    let blank = minijinja::context! { outline => "", draft => "", critique => "" };
    Ok(templates.render(template, templates::layered(&[ctx, &blank]))?)
}

/// Filters from the self-query step, kept only where the request supports them: a small model
/// invents dates, so a date filter needs a year in the request, and a platform must exist.
fn filter_from(query: &SelfQuery, topic: &str, platforms: &[String]) -> SearchFilter {
    let names_year = names_year(topic);
    let valid_date = |d: &Option<String>| {
        d.as_ref()
            .filter(|d| names_year && d.len() == 10 && topic.contains(&d[..4]))
            .cloned()
    };
    let platform = query
        .platform
        .as_ref()
        .filter(|p| platforms.contains(p) && names_platform(topic, p));
    SearchFilter {
        source: None,
        platform: platform.cloned(),
        kind: None,
        date_from: valid_date(&query.date_from),
        date_to: valid_date(&query.date_to),
    }
}

/// Whether `topic` names a year (19xx or 20xx).
fn names_year(topic: &str) -> bool {
    topic
        .split(|c: char| !c.is_ascii_digit())
        .any(|d| d.len() == 4 && (d.starts_with("19") || d.starts_with("20")))
}

/// Whether `topic` names `platform` as a word ("blogs" names blog; "thread", "tweet" and
/// "twitter" name X, and the letter x inside "next" does not).
fn names_platform(topic: &str, platform: &str) -> bool {
    let topic = topic.to_lowercase();
    let mut words = topic.split(|c: char| !c.is_alphanumeric());
    words.any(|w| {
        w == platform
            || (platform.len() > 2 && w.starts_with(platform))
            || (platform == "x"
                && (w.starts_with("thread") || w.starts_with("tweet") || w == "twitter"))
    })
}

/// Whether the self-query step could yield a filter [`filter_from`] keeps: only a topic that
/// names a year or a known platform can. For any other the step's answer would be thrown away,
/// so it is skipped: on 2 CPU cores it is 1.5–2 s of the first token's wait.
fn may_name_filters(topic: &str, platforms: &[String]) -> bool {
    names_year(topic) || platforms.iter().any(|p| names_platform(topic, p))
}

/// A variant keeps its place only if it stays near the topic in embedding space: small models
/// sometimes answer the expansion step with unrelated text, which would pull in unrelated
/// context through fusion.
pub const VARIANT_MIN_SIMILARITY: f32 = 0.35;

/// The queries a draft searches, each with its embedding: the topic first, then the distinct,
/// non-empty `variants` within [`VARIANT_MIN_SIMILARITY`] of it. One batch embeds them all, and
/// the searches reuse the vectors.
fn embedded_queries(
    embedder: &crate::engine::Embedder,
    topic: &str,
    variants: Vec<String>,
) -> Result<Vec<(String, Vec<f32>)>, DraftError> {
    let mut distinct: Vec<String> = Vec::new();
    for v in variants {
        let v = v.trim().to_string();
        if !v.is_empty()
            && !v.eq_ignore_ascii_case(topic)
            && !distinct.iter().any(|d| d.eq_ignore_ascii_case(&v))
        {
            distinct.push(v);
        }
    }
    let mut texts = vec![topic];
    texts.extend(distinct.iter().map(String::as_str));
    let mut vectors = embedder
        .embed(&texts)
        .map_err(LibraryError::from)?
        .into_iter();
    let mut queries = vec![(topic.to_string(), vectors.next().unwrap_or_default())];
    for (q, v) in distinct.into_iter().zip(vectors) {
        if retrieve::cosine(&queries[0].1, &v) >= VARIANT_MIN_SIMILARITY {
            queries.push((q, v));
        }
    }
    Ok(queries)
}

/// Split `text` into paragraphs (blank-line separated; thread posts are paragraphs).
fn paragraphs_of(text: &str, format: Format, posts: &[String]) -> Vec<String> {
    if format == Format::Thread {
        return posts.to_vec();
    }
    // Small models often separate paragraphs with single newlines; every line is one.
    text.lines()
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A run of the chain on `library` with the templates in its data folder.
fn start_run<'a>(
    library: &Library,
    model: &'a ChatModel,
    request: &'a DraftRequest,
    cancel: &'a CancelToken,
    on_event: &'a mut dyn FnMut(DraftEvent),
) -> Result<Run<'a>, DraftError> {
    if !library.store().has_embedded_chunks()? {
        return Err(DraftError::EmptyLibrary);
    }
    Ok(Run {
        model,
        templates: Templates::load(Some(&library.data_dir().join("templates")))?,
        request,
        cancel,
        on_event,
        detail: TraceDetail {
            request: Some(request.clone()),
            model: serde_json::to_value(model.info()).unwrap_or_default(),
            ..Default::default()
        },
        started: Instant::now(),
        last_instruction: String::new(),
    })
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
        Ok(_) => "ok",
        Err(DraftError::Cancelled) => "cancelled",
        Err(e) => {
            run.detail.error = Some(e.to_string());
            "error"
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
        status: status.into(),
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

/// Candidates a reranker reads: the fused list's head, where reordering changes what is picked.
const RERANK_CANDIDATES: usize = 24;

/// The registry's active reranker, loaded (cached by the library), with its name.
fn active_reranker(
    library: &mut Library,
) -> Result<Option<(String, std::sync::Arc<crate::engine::Reranker>)>, DraftError> {
    use crate::models::registry::{self, ModelKind};
    let Some(record) = registry::active(library.store(), ModelKind::Reranker)? else {
        return Ok(None);
    };
    let reranker = library.reranker_at(std::path::Path::new(&record.path))?;
    Ok(Some((record.name, reranker)))
}

/// Replace the fused scores of the first [`RERANK_CANDIDATES`] candidates by the reranker's,
/// which reads the topic and each chunk together (what neither BM25 nor separate vectors can),
/// and order them by it; the rest are dropped.
fn rerank(
    reranker: &crate::engine::Reranker,
    topic: &str,
    candidates: &mut Vec<(ChunkHit, f64)>,
) -> Result<(), DraftError> {
    let _span = tracing::info_span!("rerank", candidates = candidates.len()).entered();
    candidates.truncate(RERANK_CANDIDATES);
    let texts: Vec<&str> = candidates.iter().map(|(h, _)| h.text.as_str()).collect();
    let scores = reranker.score(topic, &texts)?;
    for ((_, score), s) in candidates.iter_mut().zip(scores) {
        *score = f64::from(s);
    }
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(())
}

/// Steps 1–4: filters, queries, retrieval, the context and the voice.
fn gather(library: &mut Library, run: &mut Run<'_>) -> Result<Gathered, DraftError> {
    let request = run.request;
    let format = request.format;
    let embedder = library.embedder()?;
    let reranker = if request.rerank && request.retrieval {
        active_reranker(library)?
    } else {
        None
    };
    let store = library.store();
    let platforms: Vec<String> = store.platforms()?.into_iter().map(|(p, _)| p).collect();

    // 1. Self-query.
    let t = Instant::now();
    let mut filter = SearchFilter::default();
    if request.self_query && request.retrieval && may_name_filters(&request.topic, &platforms) {
        let q: SelfQuery = run.structured(
            "self_query",
            "self_query",
            minijinja::context! { platforms => platforms },
            grammar::self_query_grammar(&platforms),
            grammar::max_tokens_for(1) + 48,
        )?;
        filter = filter_from(&q, &request.topic, &platforms);
        run.detail.self_query = Some(q);
    }
    run.detail.timings.self_query_ms = ms(t);

    // 2. Query expansion.
    let t = Instant::now();
    let mut variants = Vec::new();
    if request.expansions > 0 && request.retrieval {
        let e: Expansion = run.structured(
            "expand",
            "expand",
            minijinja::context! { n => request.expansions },
            grammar::expansion_grammar(request.expansions),
            grammar::max_tokens_for(request.expansions),
        )?;
        variants = e.queries;
    }
    run.detail.timings.expand_ms = ms(t);

    // 3. Retrieval: every query, fused; a filter that leaves too little is dropped.
    (run.on_event)(DraftEvent::Step {
        name: "retrieve".into(),
    });
    let t = Instant::now();
    let per_query = (request.context_chunks * 3).max(10);
    let (queries, mut candidates) = if request.retrieval {
        crate::search::check_embedder(store, &embedder)?;
        let queries = embedded_queries(&embedder, &request.topic, variants)?;
        let candidates = retrieve::multi_query(store, &queries, &filter, per_query)?;
        (queries, candidates)
    } else {
        (Vec::new(), Vec::new())
    };
    if request.retrieval && candidates.len() < request.context_chunks.min(3) && !filter.is_empty() {
        run.detail.filter_dropped = true;
        candidates = retrieve::multi_query(store, &queries, &SearchFilter::default(), per_query)?;
    }
    candidates.retain(|(hit, _)| !request.excludes(hit));
    run.detail.timings.search_ms = ms(t);
    let t = Instant::now();
    let reranked = reranker.is_some();
    if let Some((name, reranker)) = reranker {
        rerank(&reranker, &request.topic, &mut candidates)?;
        run.detail.reranker = Some(name);
    }
    run.detail.timings.rerank_ms = ms(t);
    let t = Instant::now();
    // A reranker has read the topic with every candidate; otherwise its embedding anchors them.
    let topic_vector = queries
        .first()
        .filter(|_| !reranked)
        .map(|(_, v)| v.as_slice());
    let context: Vec<ContextChunk> = retrieve::select_mmr(
        store,
        candidates,
        topic_vector,
        request.context_chunks,
        request.context_tokens,
        0.7,
        &|text| run.model.count_tokens(text),
    )?;
    let exemplars = if request.retrieval {
        let mut picked = retrieve::exemplars(
            store,
            format.platforms(),
            request.exemplars + request.exclude_documents.len(),
        )?;
        picked.retain(|hit| !request.excludes(hit));
        picked.truncate(request.exemplars);
        picked
    } else {
        Vec::new()
    };
    let card = style::card(store)?;
    run.detail.timings.select_ms = ms(t);
    run.detail.timings.retrieval_ms = ms(run.started);
    run.detail.filter = filter;
    run.detail.queries = if queries.is_empty() {
        vec![request.topic.clone()]
    } else {
        queries.into_iter().map(|(q, _)| q).collect()
    };
    run.detail.exemplar_chunks = exemplars.iter().map(|h| h.chunk_id).collect();
    run.detail.style_card = card.text.clone();

    let terms = crate::search::query_terms(&request.topic);
    let citations: Vec<Citation> = context
        .iter()
        .enumerate()
        .map(|(i, c)| Citation {
            n: i + 1,
            chunk_id: c.hit.chunk_id,
            document_id: c.hit.document_id,
            title: c.hit.title.clone(),
            path: c.hit.path.display().to_string(),
            heading_path: c.hit.heading_path.clone(),
            platform: c.hit.platform.clone(),
            date: c.hit.date.clone(),
            snippet: crate::search::snippet(&c.hit.text, &terms, 220),
            score: c.score,
        })
        .collect();
    run.detail.citations = citations;
    Ok(Gathered {
        exemplar_texts: exemplars
            .iter()
            .map(|h| format::cap_words(&h.text, 110))
            .collect(),
        card_text: card.text,
        context,
        plan: None,
    })
}

/// What the chain gathers before it writes.
#[derive(Clone, Debug)]
struct Gathered {
    /// The retrieved context, in prompt order.
    context: Vec<ContextChunk>,
    /// The user's pieces of the format, as the prompt shows them.
    exemplar_texts: Vec<String>,
    /// The style card.
    card_text: String,
    /// An article's plan, made ahead by [`prepare`].
    plan: Option<ArticlePlan>,
}

/// The system prompt every writing step shares: style card, exemplars, context.
fn system_prompt(run: &mut Run<'_>, gathered: &Gathered) -> Result<String, DraftError> {
    let context_items: Vec<minijinja::Value> = gathered
        .context
        .iter()
        .map(|c| minijinja::context! { title => c.hit.title, text => c.hit.text.split_whitespace().collect::<Vec<_>>().join(" ") })
        .collect();
    let system = run.templates.render(
        "system",
        run.ctx(&minijinja::context! {
            style_card => gathered.card_text,
            exemplars => gathered.exemplar_texts,
            context => context_items,
        }),
    )?;
    run.record_template("system");
    Ok(system)
}

/// The whole chain; with `gathered` (from [`prepare`]) steps 1–4 are already done.
fn run_chain(
    library: &mut Library,
    run: &mut Run<'_>,
    gathered: Option<Gathered>,
) -> Result<Draft, DraftError> {
    let gathered = match gathered {
        Some(g) => {
            (run.on_event)(DraftEvent::Step {
                name: "retrieve".into(),
            });
            run.detail.timings.retrieval_ms = ms(run.started);
            g
        }
        None => gather(library, run)?,
    };
    (run.on_event)(DraftEvent::Context {
        citations: run.detail.citations.clone(),
    });
    let system = system_prompt(run, &gathered)?;
    write(library, run, gathered, &system)
}

/// Steps 5–7: write, shape, cite.
fn write(
    library: &mut Library,
    run: &mut Run<'_>,
    gathered: Gathered,
    system: &str,
) -> Result<Draft, DraftError> {
    let request = run.request;
    let format = request.format;
    let Gathered {
        context,
        plan,
        exemplar_texts,
        ..
    } = gathered;
    // 5. Outline → draft → critique → revise.
    let length = format.length();
    let writing_started = run.detail.steps.len();
    let chain = request.chain_for(run.model.info().parameters);
    run.detail.chain = Some(chain);
    let embedder = library.embedder()?;
    let sources: Vec<String> = context
        .iter()
        .map(|c| c.hit.text.clone())
        .chain(exemplar_texts)
        .collect();
    // 6 and 8. Every candidate text is shaped and checked (draft health) as it is written.
    let baseline = health::TopicBaseline::new(&embedder, &request.topic)?;
    let checked = |library: &Library, raw: &str| -> Result<Candidate, DraftError> {
        let (text, posts) = shape(raw, format);
        let health = health::measure(
            library.store(),
            &embedder,
            &baseline,
            &request.topic,
            format,
            &text,
            &sources,
        )?;
        Ok(Candidate {
            text,
            posts,
            health,
        })
    };
    let mut outline = String::new();
    let draft_text = if format == Format::Article {
        write_article(run, system, plan)?
    } else {
        if chain.outlines() {
            let (extra, limits) = outline_step(run);
            outline = run.generate("outline", system, "outline", extra, limits)?;
        }
        let (extra, limits) = draft_step(run, &outline);
        run.generate("draft", system, "draft", extra, limits)?
    };
    let mut best = checked(library, &draft_text)?;
    let mut critique = String::new();
    if chain.revises() {
        critique = run.generate(
            "critique",
            system,
            "critique",
            minijinja::context! { draft => draft_text },
            GenerateRequest {
                max_tokens: 100,
                ..run.writing_request((0, 70))
            },
        )?;
        let revised = run.generate(
            "revise",
            system,
            "revise",
            minijinja::context! { draft => draft_text, critique => critique },
            run.writing_request((length.min_words, length.max_words)),
        )?;
        // A revision that collapsed (tiny models sometimes answer with a line) or that broke
        // what the draft had right keeps the draft.
        if format::word_count(&revised) >= length.min_words / 2 {
            let candidate = checked(library, &revised)?;
            if candidate.failures() <= best.failures() {
                best = candidate;
            }
        }
    }
    // A text that fails its checks is written again, with another seed, a few times at most:
    // the prompt is in the KV cache, so a retry costs its decoding alone. Articles are
    // written section by section and are not retried whole.
    let mut attempt = 0;
    while !best.health.publishable && attempt < RETRIES && format != Format::Article {
        attempt += 1;
        let (step, extra, mut limits) = if chain.revises() {
            let extra = minijinja::context! { draft => draft_text, critique => critique };
            (
                "revise",
                extra,
                run.writing_request((length.min_words, length.max_words)),
            )
        } else {
            let (extra, limits) = draft_step(run, &outline);
            ("draft", extra, limits)
        };
        limits.sampling.seed = limits.sampling.seed.wrapping_add(attempt);
        let text = run.generate(step, system, step, extra, limits)?;
        let candidate = checked(library, &text)?;
        if candidate.better_than(&best) {
            best = candidate;
        }
    }
    run.detail.retries = attempt;
    let writing = &run.detail.steps[writing_started..];
    let (tokens, decode_ms) = writing.iter().fold((0usize, 0f64), |(n, t), s| {
        (n + s.stats.generated_tokens, t + s.stats.decode_ms)
    });
    if decode_ms > 0.0 {
        run.detail.timings.tokens_per_second = tokens as f64 / (decode_ms / 1e3);
    }
    let Candidate {
        text,
        posts,
        health,
    } = best;

    // 7. Citations and near-repeat warnings.
    let t = Instant::now();
    let paragraph_texts = paragraphs_of(&text, format, &posts);
    let refs: Vec<&str> = paragraph_texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs).map_err(LibraryError::from)?;
    let paragraphs_with_vectors: Vec<(String, Vec<f32>)> =
        paragraph_texts.into_iter().zip(vectors).collect();
    let paragraphs = cite::attribute(&paragraphs_with_vectors, &context);
    let warnings = cite::near_repeats(library.store(), &paragraphs_with_vectors, &context)?;
    run.detail.timings.cite_ms = ms(t);
    run.detail.paragraphs = paragraphs.clone();
    run.detail.warnings = warnings.clone();

    run.detail.health = Some(health.clone());
    Ok(Draft {
        words: format::word_count(&text),
        text,
        format,
        posts,
        paragraphs,
        citations: run.detail.citations.clone(),
        warnings,
        health,
        trace_id: 0,
        timings: DraftTimings::default(),
    })
}

/// Writing a text again when it fails its checks: at most this many more attempts.
const RETRIES: u32 = 2;

/// A shaped text and its health.
struct Candidate {
    text: String,
    posts: Vec<String>,
    health: health::Health,
}

impl Candidate {
    fn failures(&self) -> usize {
        self.health.failures().count()
    }

    /// Publishable beats not; then fewer failed checks.
    fn better_than(&self, other: &Candidate) -> bool {
        (self.health.publishable, std::cmp::Reverse(self.failures()))
            > (
                other.health.publishable,
                std::cmp::Reverse(other.failures()),
            )
    }
}

/// Step 6, shaping: chatter, loops and echoes out, fragments and markup tidied, the length
/// capped at a sentence end, a thread split into posts of at most 280 characters.
fn shape(raw: &str, format: Format) -> (String, Vec<String>) {
    let text = format::drop_repeats(&format::strip_chatter(raw));
    let text = if format == Format::Thread {
        text
    } else {
        format::strip_post_numbers(&text)
    };
    let text = tidy::tidy(&text, format);
    let text = format::cap_words(&text, format.length().max_words);
    let posts = if format == Format::Thread {
        format::split_thread(&text)
    } else {
        Vec::new()
    };
    if posts.is_empty() {
        (text, posts)
    } else {
        (posts.join("\n\n"), posts)
    }
}

/// The draft step's values and limits, following `outline` (empty in a direct chain).
fn draft_step(run: &Run<'_>, outline: &str) -> (minijinja::Value, GenerateRequest) {
    let length = run.request.format.length();
    (
        minijinja::context! { outline => outline },
        run.writing_request((length.min_words, length.max_words)),
    )
}

/// The outline step's values and limits (the first writing step of every format but articles).
fn outline_step(run: &Run<'_>) -> (minijinja::Value, GenerateRequest) {
    (
        minijinja::context! { points => 3 },
        GenerateRequest {
            max_tokens: 90,
            ..run.writing_request((0, 60))
        },
    )
}

/// An article's title and sections, grammar-constrained.
fn article_plan(run: &mut Run<'_>) -> Result<ArticlePlan, DraftError> {
    let sections = 3;
    run.structured(
        "outline",
        "article_outline",
        minijinja::context! { sections => sections },
        grammar::outline_grammar(sections),
        grammar::max_tokens_for(sections + 1),
    )
}

/// The values and limits of the step that writes `heading`'s section of `plan`.
fn section_step(
    run: &Run<'_>,
    plan: &ArticlePlan,
    heading: &str,
) -> (minijinja::Value, GenerateRequest) {
    let length = run.request.format.length();
    let parts = plan.sections.len().max(1);
    (
        minijinja::context! {
            title => plan.title,
            sections => plan.sections,
            heading => heading,
            words => length.target_words / parts,
        },
        run.writing_request((length.min_words / parts, length.max_words / parts)),
    )
}

/// Articles: a grammar-constrained plan (title and sections; `plan` when [`prepare`] made it),
/// then each section in turn.
fn write_article(
    run: &mut Run<'_>,
    system: &str,
    plan: Option<ArticlePlan>,
) -> Result<String, DraftError> {
    let plan = match plan {
        Some(p) => p,
        None => article_plan(run)?,
    };
    let mut article = format!("# {}\n", plan.title.trim());
    for heading in &plan.sections {
        let (extra, limits) = section_step(run, &plan, heading);
        let body = run.generate("section", system, "section", extra, limits)?;
        article.push_str(&format!("\n## {}\n\n{}\n", heading.trim(), body.trim()));
    }
    Ok(article)
}

/// A draft's retrieval done before the request: what [`draft_with`] would otherwise do first.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The request fields that shape the gathered context and the prompt.
    key: String,
    /// The library's revision when preparing ended.
    revision: crate::store::Revision,
    gathered: Gathered,
    /// The trace so far: self-query, expansion, queries, context.
    detail: TraceDetail,
    ahead_ms: f64,
}

impl Prepared {
    /// Whether a draft of `request` on `library` can start from this: the same topic, format and
    /// retrieval settings, and nothing written to the library since. Sampling, "draft only" and
    /// the adapter's strength may differ: they only change the writing.
    pub fn matches(&self, library: &Library, request: &DraftRequest) -> Result<bool, DraftError> {
        Ok(self.key == preparation_key(request) && self.revision == library.store().revision()?)
    }

    /// The sources the draft will draw on.
    pub fn citations(&self) -> &[Citation] {
        &self.detail.citations
    }

    /// What the draft searched for: the topic, then the model's variants that were kept.
    pub fn queries(&self) -> &[String] {
        &self.detail.queries
    }

    /// How long preparing took, ms.
    pub fn ahead_ms(&self) -> f64 {
        self.ahead_ms
    }
}

fn preparation_key(request: &DraftRequest) -> String {
    let shaping = DraftRequest {
        sampling: Sampling::default(),
        draft_only: false,
        adapter_scale: 0.0,
        ..request.clone()
    };
    serde_json::to_string(&shaping).unwrap_or_default()
}

/// Everything a draft of `request` does before its first token, done now: self-query, query
/// expansion, retrieval, the voice, an article's plan, and the first writing step's prompt
/// evaluated into the model's KV cache. The app calls this while the topic is being typed, so
/// that [`draft_with`] starts at the first token; on two CPU cores that saves the ~5 s of
/// prompt evaluation the retrieved context costs. The KV cache is only a head start: if
/// something else used the model since, the draft evaluates its prompt again.
pub fn prepare(
    library: &mut Library,
    model: &ChatModel,
    request: &DraftRequest,
    cancel: &CancelToken,
) -> Result<Prepared, DraftError> {
    let _span = tracing::info_span!("prepare_draft", format = ?request.format).entered();
    let mut ignore = |_: DraftEvent| {};
    let mut run = start_run(library, model, request, cancel, &mut ignore)?;
    let mut gathered = gather(library, &mut run)?;
    let system = system_prompt(&mut run, &gathered)?;
    let (template, (extra, limits)) = if request.format == Format::Article {
        let plan = article_plan(&mut run)?;
        let first = plan.sections.first().cloned().unwrap_or_default();
        let step = section_step(&run, &plan, &first);
        gathered.plan = Some(plan);
        ("section", step)
    } else if request.chain_for(model.info().parameters).outlines() {
        ("outline", outline_step(&run))
    } else {
        ("draft", draft_step(&run, ""))
    };
    let first = run.step_request(&system, template, extra, limits)?;
    let evaluated = model.generate(
        &GenerateRequest {
            max_tokens: 0,
            min_tokens: 0,
            ..first
        },
        cancel,
        &mut |_| {},
    )?;
    if evaluated.finish == FinishReason::Cancelled {
        return Err(DraftError::Cancelled);
    }
    Ok(Prepared {
        key: preparation_key(request),
        revision: library.store().revision()?,
        gathered,
        ahead_ms: ms(run.started),
        detail: run.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_may_keep_its_draft_s_lines_but_not_echo_its_instructions() {
        let templates = Templates::load(None).unwrap();
        let kept = "Price the whole shop, not just the cut, every single time.";
        let ctx = minijinja::context! {
            topic => "pricing", author => "Nell", format_name => "LinkedIn post", words => 150,
            rules => Format::Linkedin.rules(), draft => kept, critique => "Too long overall, cut it.",
        };
        let source = echo_source(&templates, "revise", &ctx).unwrap();
        assert!(
            !source.contains(kept) && source.contains("Rewrite the draft"),
            "{source}"
        );
        let reply = format!("{kept}\nRewrite the draft so that it is shorter:");
        assert_eq!(format::drop_echoes(&reply, &source), kept);
    }

    #[test]
    fn only_a_topic_naming_a_platform_or_a_year_needs_the_self_query() {
        let platforms: Vec<String> = ["linkedin", "x", "blog", "newsletter"]
            .map(String::from)
            .to_vec();
        for topic in [
            "my 2024 posts on estimates",
            "A LinkedIn post about code review",
            "a thread on jigs",
            "what my blogs say about rest",
            "An X thread on small pull requests",
        ] {
            assert!(may_name_filters(topic, &platforms), "{topic}");
        }
        for topic in [
            "How to price a small software product",
            "the next complex fix",
            "shipping 300 small pull requests",
        ] {
            assert!(!may_name_filters(topic, &platforms), "{topic}");
        }
    }
}
