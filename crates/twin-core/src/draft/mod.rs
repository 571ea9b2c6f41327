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
mod gather;
pub mod health;
pub mod profile;
pub mod retrieve;
pub mod style;
pub mod tidy;
mod write;

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
use gather::*;
use grammar::{ArticlePlan, Expansion, SelfQuery};
use retrieve::ContextChunk;
use serde::Serialize;
use std::time::Instant;
use write::*;

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
