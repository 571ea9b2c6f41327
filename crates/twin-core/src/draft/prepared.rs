//! A draft prepared ahead: retrieval done and the prompt evaluated while the topic is typed.

use super::*;

/// What the chain gathers before it writes.
#[derive(Clone, Debug)]
pub(super) struct Gathered {
    /// The retrieved context, in prompt order.
    pub(super) context: Vec<ContextChunk>,
    /// The user's pieces of the format, as the prompt shows them.
    pub(super) exemplar_texts: Vec<String>,
    /// The style card.
    pub(super) card_text: String,
    /// An article's plan, made ahead by [`prepare`].
    pub(super) plan: Option<ArticlePlan>,
    /// A post's plan from the author's own sentences, when the profile asks for one and the
    /// passages hold enough of them (else the model plans).
    pub(super) points: Option<String>,
}

/// A draft's retrieval done before the request: what [`draft_with`] would otherwise do first.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The request fields that shape the gathered context and the prompt.
    pub(super) key: String,
    /// The library's revision when preparing ended.
    pub(super) revision: crate::store::Revision,
    pub(super) gathered: Gathered,
    /// The trace so far: self-query, expansion, queries, context.
    pub(super) detail: TraceDetail,
    pub(super) ahead_ms: f64,
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

pub(super) fn preparation_key(request: &DraftRequest) -> String {
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
    } else if let Some(points) = &gathered.points {
        ("draft", draft_step(&run, points))
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
