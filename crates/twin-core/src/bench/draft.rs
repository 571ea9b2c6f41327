//! `twin bench draft`: generation speed against a bare llama.cpp decode loop, time to first
//! token with and without retrieval, and the time of every retrieval step of the chain.

use crate::bench::{peak_rss_mib, BenchRow};
use crate::draft::{self, DraftError, DraftEvent, DraftRequest, Format, Prepared};
use crate::engine::{self, ChatMessage, ChatModel, ChatModelConfig, GenerateRequest, Sampling};
use crate::library::{ImportOptions, Library};
use crate::progress::{CancelToken, NoProgress};
use std::path::PathBuf;
use std::time::Instant;

/// What `twin bench draft` measures.
#[derive(Clone, Debug)]
pub struct DraftBench {
    /// The chat model (GGUF).
    pub model: PathBuf,
    /// How to run it (threads, context, GPU layers).
    pub config: ChatModelConfig,
    /// The embedding model (GGUF) for the scratch library.
    pub embedding_model: PathBuf,
    /// Writing imported into the scratch library.
    pub writing: PathBuf,
    /// Where the scratch library goes.
    pub scratch: PathBuf,
    /// Tokens generated per decode measurement.
    pub tokens: usize,
    /// Repetitions of each time-to-first-token measurement.
    pub runs: usize,
}

fn row(metric: &str, value: String, note: impl Into<String>) -> BenchRow {
    BenchRow {
        metric: metric.into(),
        value,
        note: note.into(),
    }
}

/// The middle value (the upper one of an even count); 0 for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Time from the call to the first streamed token of the first writing step, stopping the
/// draft right there. Without `prepared` the KV cache is emptied first, so the run evaluates its
/// prompt cold; with it, the draft starts where [`draft::prepare`] left the model.
fn time_to_first_token(
    library: &mut Library,
    model: &ChatModel,
    request: &DraftRequest,
    prepared: Option<Prepared>,
) -> Result<f64, DraftError> {
    if prepared.is_none() {
        model.clear_cache()?;
    }
    let cancel = CancelToken::new();
    let started = Instant::now();
    let mut first: Option<f64> = None;
    let result = draft::draft_with(library, model, request, prepared, &cancel, &mut |e| {
        if let DraftEvent::Text { step, .. } = e {
            if step != "self_query" && step != "expand" && first.is_none() {
                first = Some(started.elapsed().as_secs_f64() * 1e3);
                cancel.cancel();
            }
        }
    });
    match result {
        Ok(_) | Err(DraftError::Cancelled) => Ok(first.unwrap_or(0.0)),
        Err(e) => Err(e),
    }
}

/// [`draft::prepare`] `request` on an empty KV cache, then [`time_to_first_token`] from it:
/// (preparing ms, first token ms).
fn prepared_first_token(
    library: &mut Library,
    model: &ChatModel,
    request: &DraftRequest,
) -> Result<(f64, f64), DraftError> {
    model.clear_cache()?;
    let p = draft::prepare(library, model, request, &CancelToken::new())?;
    let ahead = p.ahead_ms();
    Ok((
        ahead,
        time_to_first_token(library, model, request, Some(p))?,
    ))
}

/// A draft as `twin draft` starts it in a fresh process: the model loaded anew (empty KV
/// cache), the default request (chain and expansions from the model's profile, retrieval on).
/// The first topic finds no prompt kept on disk; the others start from the format's head (its
/// instructions, style card and exemplars) that the first one kept.
fn cold_first_token(b: &DraftBench, library: &mut Library) -> Result<Vec<BenchRow>, DraftError> {
    let topics = [
        "how to price a small software product",
        "why small teams ship faster",
        "what woodworking taught me about code review",
    ];
    let config = ChatModelConfig {
        prompt_cache: Some(b.scratch.join("prompt-cache")),
        ..b.config.clone()
    };
    let mut loads = Vec::new();
    let mut firsts = Vec::new();
    for topic in topics {
        let started = std::time::Instant::now();
        let model = ChatModel::load(&b.model, &config)?;
        loads.push(started.elapsed().as_secs_f64() * 1e3);
        let request = DraftRequest::new(topic, Format::Linkedin);
        firsts.push(time_to_first_token(library, &model, &request, None)?);
    }
    let warm = median(firsts[1..].to_vec());
    Ok(vec![
        row(
            "cold: model load",
            format!("{:.0} ms", median(loads)),
            "median; a fresh process loads the model before its first draft",
        ),
        row(
            "cold first token, nothing kept on disk",
            format!("{:.0} ms", firsts[0]),
            format!("default chain, retrieval on; \"{}\"", topics[0]),
        ),
        row(
            "cold first token, format's head kept on disk",
            format!("{warm:.0} ms"),
            "median of 2 other topics: only the sources and the request are read; goal ≤ 2 s",
        ),
        row(
            "kept / nothing kept",
            format!("{:.2}×", warm / firsts[0].max(1e-9)),
            "the prompt cache's share of a cold start",
        ),
    ])
}

/// Run the drafting benchmark.
pub fn draft(b: &DraftBench) -> Result<Vec<BenchRow>, DraftError> {
    let mut rows = Vec::new();
    let threads = b.config.threads;

    // Decode speed: the generator against llama.cpp's bare loop, same prompt and settings.
    let model = ChatModel::load(&b.model, &b.config)?;
    let messages = vec![
        ChatMessage::system("You are a helpful assistant."),
        ChatMessage::user(
            "Write a long essay about what woodworking teaches about building software.",
        ),
    ];
    let prompt = model.render(&messages)?;
    // Both run llama.cpp off the calling thread (the generator on its worker, the bare loop on
    // a thread of its own), in alternating order, best of three: llama.cpp's OpenMP threads make
    // single measurements on 2 cores swing by ±20%.
    let bare_once = || {
        std::thread::scope(|scope| {
            scope
                .spawn(|| engine::generate::bare_decode(&b.model, &prompt, b.tokens, &b.config))
                .join()
                .unwrap_or(Err(engine::EngineError::WorkerGone))
        })
    };
    let twin_once = || -> Result<f64, DraftError> {
        model.clear_cache()?;
        let request = GenerateRequest {
            messages: messages.clone(),
            max_tokens: b.tokens + 1,
            min_tokens: b.tokens + 1,
            sampling: Sampling {
                repeat_penalty: 1.0,
                ..Sampling::greedy()
            },
            ..Default::default()
        };
        let g = model.generate(&request, &CancelToken::new(), &mut |_| {})?;
        Ok(g.stats.tokens_per_second)
    };
    let mut bare = 0f64;
    let mut twin = 0f64;
    for round in 0..3 {
        if round % 2 == 0 {
            bare = bare.max(bare_once()?.tokens_per_second);
            twin = twin.max(twin_once()?);
        } else {
            twin = twin.max(twin_once()?);
            bare = bare.max(bare_once()?.tokens_per_second);
        }
    }
    let sampled = {
        model.clear_cache()?;
        let request = GenerateRequest {
            messages: messages.clone(),
            max_tokens: b.tokens + 1,
            min_tokens: b.tokens + 1,
            ..Default::default()
        };
        model
            .generate(&request, &CancelToken::new(), &mut |_| {})?
            .stats
            .tokens_per_second
    };
    let info = model.info();
    let setting = format!(
        "{}, {threads} threads, ctx {}, {} tokens, {} GPU layers",
        info.name, info.context, b.tokens, info.gpu_layers
    );
    rows.push(row(
        "decode, bare llama.cpp loop (greedy)",
        format!("{bare:.1} tok/s"),
        setting.clone(),
    ));
    rows.push(row(
        "decode, Twin generator (greedy)",
        format!("{twin:.1} tok/s"),
        setting,
    ));
    rows.push(row(
        "generator / bare",
        format!("{:.1}%", 100.0 * twin / bare.max(1e-9)),
        "goal ≥ 95%; best of 3 each, alternating order",
    ));
    rows.push(row(
        "decode, Twin default sampling",
        format!("{sampled:.1} tok/s"),
        "penalties, top-k, top-p, min-p, temperature",
    ));

    // A scratch library from the sample writing.
    let _ = std::fs::remove_dir_all(&b.scratch);
    let mut library = Library::open(
        &b.scratch,
        crate::engine::EmbedderConfig {
            threads,
            ..Default::default()
        },
    )?;
    library.set_embedding_model(&b.embedding_model)?;
    library.import(
        std::slice::from_ref(&b.writing),
        &ImportOptions::default(),
        &NoProgress,
        &CancelToken::new(),
    )?;

    // Time to first token: retrieval (hybrid search, MMR, exemplars) against none.
    let topics = [
        "pricing a small product",
        "why small pull requests ship faster",
    ];
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut full_chain = Vec::new();
    let mut prepared_without = Vec::new();
    let mut prepared_full = Vec::new();
    let mut ahead = Vec::new();
    for _ in 0..b.runs.max(1) {
        for topic in topics {
            let mut request = DraftRequest::new(topic, Format::Linkedin);
            request.expansions = Some(0);
            request.self_query = false;
            request.draft_only = true;
            request.retrieval = false;
            without.push(time_to_first_token(&mut library, &model, &request, None)?);
            prepared_without.push(prepared_first_token(&mut library, &model, &request)?.1);
            request.retrieval = true;
            with.push(time_to_first_token(&mut library, &model, &request, None)?);
            request.expansions = Some(3);
            request.self_query = true;
            full_chain.push(time_to_first_token(&mut library, &model, &request, None)?);
            let (ms_ahead, first) = prepared_first_token(&mut library, &model, &request)?;
            ahead.push(ms_ahead);
            prepared_full.push(first);
        }
    }
    let (with, without, full_chain) = (median(with), median(without), median(full_chain));
    let (prepared_without, prepared_full, ahead) = (
        median(prepared_without),
        median(prepared_full),
        median(ahead),
    );
    rows.push(row(
        "first token, no retrieval",
        format!("{without:.0} ms"),
        "median; style card only, cold KV cache",
    ));
    rows.push(row(
        "first token, with retrieval",
        format!("{with:.0} ms"),
        "median; hybrid search + MMR + exemplars, context in the prompt",
    ));
    rows.push(row(
        "with / without",
        format!("{:.2}×", with / without.max(1e-9)),
        "goal ≤ 1.2×",
    ));
    rows.push(row(
        "first token, full chain",
        format!("{full_chain:.0} ms"),
        "median; adds the 3-query expansion (a short generation; these topics name no platform or year, so no self-query)",
    ));
    rows.push(row(
        "first token, prepared, no retrieval",
        format!("{prepared_without:.1} ms"),
        "median; the app prepares while the topic is typed (draft::prepare)",
    ));
    rows.push(row(
        "first token, prepared, full chain",
        format!("{prepared_full:.1} ms"),
        format!("median; self-query, expansion, retrieval and prompt done ahead in {ahead:.0} ms"),
    ));
    rows.push(row(
        "prepared: with / without",
        format!("{:.2}×", prepared_full / prepared_without.max(1e-9)),
        "goal ≤ 1.2× (the app's path; the cold ratio is above)",
    ));

    rows.extend(cold_first_token(b, &mut library)?);

    // Every step of one full chain; the topic names a platform, so the self-query runs too.
    let mut request = DraftRequest::new(
        "a LinkedIn post on how to price a small software product",
        Format::Linkedin,
    );
    request.draft_only = true;
    model.clear_cache()?;
    let d = draft::draft(
        &mut library,
        &model,
        &request,
        &CancelToken::new(),
        &mut |_| {},
    )?;
    let t = &d.timings;
    let expansions = request.expansions_for(model.info().parameters);
    let expansion_note = format!("{expansions} variants (the model's profile for posts)");
    let search_step = format!("step: hybrid search × {} queries + RRF", expansions + 1);
    let steps = [
        (
            "step: self-query (model, grammar)",
            t.self_query_ms,
            "JSON filters",
        ),
        (
            "step: query expansion (model, grammar)",
            t.expand_ms,
            expansion_note.as_str(),
        ),
        (
            search_step.as_str(),
            t.search_ms,
            "BM25 + vectors per query",
        ),
        ("step: MMR, exemplars, style card", t.select_ms, ""),
        (
            "step: citations + near-repeat check",
            t.cite_ms,
            "embeds each paragraph",
        ),
    ];
    for (metric, ms, note) in steps {
        // Model steps take seconds, the others milliseconds: one decimal where it matters.
        let value = if ms >= 100.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{ms:.1} ms")
        };
        rows.push(row(metric, value, note));
    }
    rows.push(row(
        "draft-only LinkedIn post, total",
        format!("{:.1} s", t.total_ms / 1e3),
        format!("{} words, {:.1} tok/s", d.words, t.tokens_per_second),
    ));
    rows.push(row(
        "peak RSS",
        format!("{:.0} MiB", peak_rss_mib()),
        "two model copies loaded (bare loop and generator)",
    ));
    Ok(rows)
}
