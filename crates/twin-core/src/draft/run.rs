//! A draft's run: what it records (the trace's detail), its steps and events, and how it starts.

use super::*;

/// Everything a run records, stored as the trace's detail.
#[derive(Clone, Debug, Default, Serialize)]
pub(super) struct TraceDetail {
    pub(super) request: Option<DraftRequest>,
    /// The retrieval steps ran ahead of the request (see [`prepare`]).
    pub(super) prepared: bool,
    pub(super) templates: Vec<TemplateUse>,
    pub(super) style_card: String,
    pub(super) self_query: Option<SelfQuery>,
    pub(super) filter: SearchFilter,
    pub(super) filter_dropped: bool,
    pub(super) queries: Vec<String>,
    /// The reranker model that ordered the candidates, if one did.
    pub(super) reranker: Option<String>,
    pub(super) exemplar_chunks: Vec<i64>,
    pub(super) citations: Vec<Citation>,
    pub(super) steps: Vec<StepTrace>,
    pub(super) paragraphs: Vec<Paragraph>,
    pub(super) warnings: Vec<String>,
    pub(super) health: Option<health::Health>,
    /// The chain that wrote the draft.
    pub(super) chain: Option<Chain>,
    /// Texts written again because the earlier ones failed their checks.
    pub(super) retries: u32,
    pub(super) timings: DraftTimings,
    pub(super) model: serde_json::Value,
    pub(super) error: Option<String>,
}

pub(super) fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Runs one draft; holds what the steps share.
pub(super) struct Run<'a> {
    pub(super) model: &'a ChatModel,
    pub(super) templates: Templates,
    pub(super) request: &'a DraftRequest,
    pub(super) cancel: &'a CancelToken,
    pub(super) on_event: &'a mut dyn FnMut(DraftEvent),
    pub(super) detail: TraceDetail,
    pub(super) started: Instant,
    /// The last step's rendered instruction, to strip echoes of it from the output.
    pub(super) last_instruction: String,
    /// Added to the request's seed for the writing steps: a long text written again as a
    /// whole samples other text than the first time.
    pub(super) seed_shift: u32,
}

impl Run<'_> {
    /// The values a step's template sees: the shared ones, overridden by the step's `extra`
    /// (a section's word count).
    pub(super) fn ctx(&self, extra: &minijinja::Value) -> minijinja::Value {
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

    pub(super) fn record_template(&mut self, name: &str) {
        if let Some(u) = self.templates.describe(name) {
            if !self.detail.templates.iter().any(|t| t.name == u.name) {
                self.detail.templates.push(u.clone());
            }
        }
    }

    /// The request of one step: `system`, then the rendered `template` as the user's turn.
    pub(super) fn step_request(
        &self,
        system: &str,
        template: &str,
        extra: minijinja::Value,
        request: GenerateRequest,
    ) -> Result<GenerateRequest, DraftError> {
        let instruction = self.templates.render(template, self.ctx(&extra))?;
        Ok(GenerateRequest {
            messages: vec![ChatMessage::system(system), ChatMessage::user(instruction)],
            // The system prompt opens with the format's instructions, style card and exemplars:
            // the same for every draft in a format, worth keeping for the next process.
            cache_prompt: true,
            ..request
        })
    }

    /// One generation step: `system` + the rendered `template`, streamed as `step`.
    pub(super) fn generate(
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

    /// A grammar-constrained step, parsed into `T`: greedy, or sampled with `sampling` (another
    /// try after a greedy answer was unusable).
    pub(super) fn structured<T: serde::de::DeserializeOwned>(
        &mut self,
        step: &'static str,
        template: &str,
        extra: minijinja::Value,
        grammar: String,
        max_tokens: usize,
        sampling: Option<Sampling>,
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
            GenerateRequest {
                sampling: sampling.unwrap_or_else(Sampling::greedy),
                ..structured::request(grammar, max_tokens)
            },
        )?;
        Ok(structured::parse(step, &text)?)
    }

    pub(super) fn writing_request(&self, words: (usize, usize)) -> GenerateRequest {
        // About 1.4 tokens per English word with small-model vocabularies.
        GenerateRequest {
            max_tokens: words.1 * 14 / 10 + 16,
            min_words: words.0,
            sampling: Sampling {
                seed: self.request.sampling.seed.wrapping_add(self.seed_shift),
                ..self.request.sampling.clone()
            },
            adapter_scale: self.request.adapter_scale,
            stop: vec!["<|im_end|>".into(), "\n\n\n\n".into()],
            penalize_prompt: true,
            ..Default::default()
        }
    }
}

/// `template` rendered with `ctx` but without the earlier steps' output it quotes (outline,
/// draft, critique): the instructions a step's reply may not echo.
pub(super) fn echo_source(
    templates: &Templates,
    template: &str,
    ctx: &minijinja::Value,
) -> Result<String, DraftError> {
    let blank = minijinja::context! { outline => "", draft => "", critique => "" };
    Ok(templates.render(template, templates::layered(&[ctx, &blank]))?)
}

/// Split `text` into paragraphs (blank-line separated; thread posts are paragraphs).
pub(super) fn paragraphs_of(text: &str, format: Format, posts: &[String]) -> Vec<String> {
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
pub(super) fn start_run<'a>(
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
        templates: Templates::in_data_dir(library.data_dir())?,
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
        seed_shift: 0,
    })
}
