//! The writing chain: the system prompt every step shares (style card, exemplars, context),
//! the steps the model's profile picks (outline, draft, critique, revise; an article's plan and
//! sections), each candidate shaped and checked by `health` as it is written, and a failing
//! text written again with another seed, at most twice.

use super::*;

/// The system prompt every writing step shares: style card, exemplars, context.
pub(super) fn system_prompt(run: &mut Run<'_>, gathered: &Gathered) -> Result<String, DraftError> {
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
pub(super) fn run_chain(
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
pub(super) fn write(
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
        points: gathered_points,
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
    let check_part = |text: &str| {
        let (shaped, _) = shape(text, format);
        let health =
            health::measure_part(library.store(), &request.topic, format, &shaped, &sources);
        (shaped, health)
    };
    let (draft_text, in_parts) = write_text(
        run,
        system,
        chain,
        plan,
        gathered_points.clone(),
        &mut outline,
        &check_part,
    )?;
    let mut best = checked(library, &draft_text)?;
    if !in_parts {
        preview(run, &best);
    }
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
                preview(run, &best);
            }
        }
    }
    // A text that fails its checks is written again, with another seed, a few times at most:
    // the prompt is in the KV cache, so a retry costs its decoding alone. Texts that were
    // written in parts are retried part by part as they are written (`article::write_parts`).
    // In a revising chain the retries take turns: revise again, then write a new draft from
    // the plan. Every revision starts from the first draft, so one that drifted off the topic
    // ("Shop my house every year" for a post on pricing, 2026-12-03) took all its revisions
    // with it.
    let mut attempt = 0;
    while !best.health.publishable && attempt < RETRIES && !in_parts {
        attempt += 1;
        let (step, extra, mut limits) = if chain.revises() && attempt % 2 == 1 {
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
            preview(run, &best);
        }
    }
    run.detail.retries += attempt;
    // A long text is checked part by part as it is written; what only the whole can fail
    // (staying on the topic: a newsletter on handing over a codebase that became one on jigs,
    // 2026-12-04) writes it again once as a whole, plan included, with other seeds.
    if in_parts && !best.health.publishable {
        run.seed_shift = LONG_TEXT_RESEED;
        let mut outline = String::new();
        let (text, _) = write_text(
            run,
            system,
            chain,
            None,
            gathered_points,
            &mut outline,
            &check_part,
        )?;
        run.seed_shift = 0;
        run.detail.retries += 1;
        let candidate = checked(library, &text)?;
        if candidate.better_than(&best) {
            best = candidate;
        }
        preview(run, &best);
    }
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

/// The seed shift of a long text written again as a whole: far from the part retries' own
/// shifts (1, 2), so no part repeats a try.
const LONG_TEXT_RESEED: u32 = 1000;

/// The first text of a draft: an article's plan and sections; else the outline (the author's
/// own `points`, or one the model writes when the chain outlines) into `outline`, then a
/// newsletter's parts or the draft. Returns the text and whether it was written in parts.
fn write_text(
    run: &mut Run<'_>,
    system: &str,
    chain: Chain,
    plan: Option<ArticlePlan>,
    points: Option<String>,
    outline: &mut String,
    check_part: &dyn Fn(&str) -> (String, health::Health),
) -> Result<(String, bool), DraftError> {
    let format = run.request.format;
    if format == Format::Article {
        return Ok((write_article(run, system, plan, check_part)?, true));
    }
    if let Some(points) = points {
        // The author's own sentences are the plan: a step of the trace, but no streamed
        // text (shells time the model's first token from the first text they hear).
        (run.on_event)(DraftEvent::Step {
            name: "outline".into(),
        });
        run.detail.steps.push(StepTrace {
            name: "outline".into(),
            template: OWN_POINTS_TEMPLATE.into(),
            output: points.clone(),
            finish: FinishReason::EndOfText,
            stats: Default::default(),
        });
        *outline = points;
    } else if chain.outlines() {
        let (extra, limits) = outline_step(run);
        *outline = run.generate("outline", system, "outline", extra, limits)?;
    }
    let points = plan_points(outline, 3);
    if format == Format::Newsletter && points.len() >= 2 {
        return Ok((write_newsletter(run, system, &points, check_part)?, true));
    }
    let (extra, limits) = draft_step(run, outline);
    Ok((
        run.generate("draft", system, "draft", extra, limits)?,
        false,
    ))
}

/// What the trace names as the outline step's template when the plan is the author's own
/// sentences (no model wrote it).
const OWN_POINTS_TEMPLATE: &str = "your sentences on the topic";

/// Writing a text (a post, a part of a long text, an article's plan) again when it fails its
/// checks: at most this many more attempts. Four for posts were tried (2026-12-03): the
/// README's main job still failed (every try invented a year or drifted), 18 s slower.
pub(super) const RETRIES: u32 = 2;

/// A shaped text and its health.
pub(super) struct Candidate {
    text: String,
    posts: Vec<String>,
    health: health::Health,
}

impl Candidate {
    fn failures(&self) -> usize {
        self.health.failures().count()
    }

    fn better_than(&self, other: &Candidate) -> bool {
        self.health.beats(&other.health)
    }
}

/// Show `best` as the draft so far.
fn preview(run: &mut Run<'_>, best: &Candidate) {
    (run.on_event)(DraftEvent::Preview {
        text: best.text.clone(),
    });
}

/// Step 6, shaping: chatter, loops and echoes out, fragments and markup tidied, the length
/// capped at a sentence end, a thread split into posts of at most 280 characters.
pub(super) fn shape(raw: &str, format: Format) -> (String, Vec<String>) {
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
pub(super) fn draft_step(run: &Run<'_>, outline: &str) -> (minijinja::Value, GenerateRequest) {
    let length = run.request.format.length();
    (
        minijinja::context! { outline => outline },
        run.writing_request((length.min_words, length.max_words)),
    )
}

/// The outline step's values and limits (the first writing step of every format but articles).
pub(super) fn outline_step(run: &Run<'_>) -> (minijinja::Value, GenerateRequest) {
    (
        minijinja::context! { points => 3 },
        GenerateRequest {
            max_tokens: 90,
            ..run.writing_request((0, 60))
        },
    )
}
