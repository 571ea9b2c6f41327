//! The worker thread that owns a model's llama.cpp context: its KV state, the sampler chain, and
//! the jobs it runs (generation with streaming and stop detection, and scoring).

use super::*;

pub(super) fn load_adapter(
    model: &mut LlamaModel,
    path: &Path,
) -> Result<LlamaLoraAdapter, EngineError> {
    crate::engine::validate_gguf(path)?;
    model
        .lora_adapter_init(path)
        .map_err(|e| EngineError::Load {
            path: path.to_path_buf(),
            reason: format!("llama.cpp could not load this LoRA adapter for the model ({e})"),
        })
}

/// What the worker knows about the KV cache between requests.
pub(super) struct KvState {
    /// Tokens whose keys and values are in the cache, in position order.
    pub(super) cached: Vec<LlamaToken>,
    /// Adapter scale the cached tokens were computed with.
    pub(super) scale: f32,
    /// Where the context's logits are, while they are still those of the last cached token
    /// (nothing evaluated since): a prompt already evaluated to its end then needs no evaluation.
    pub(super) logits_at: Option<i32>,
}

pub(super) fn spawn_worker(
    model: Arc<LlamaModel>,
    config: &ChatModelConfig,
    context: u32,
    mut adapter: Option<LlamaLoraAdapter>,
    cache: Option<super::prompt_cache::PromptCache>,
) -> Result<crate::engine::worker::Worker<Job>, EngineError> {
    let threads = crate::engine::llama_threads(config.threads);
    let batch_tokens = config.batch_tokens.clamp(8, context);
    crate::engine::worker::Worker::spawn(
        "twin-generate",
        move |inbox: mpsc::Receiver<Job>, ready_tx| {
            // Declared before the context, so it is dropped after it: the callback reads it.
            let abort = crate::engine::ffi::AbortSlot::default();
            let params = crate::engine::ffi::with_abort_callback(
                context_params(context, batch_tokens, threads),
                &abort,
            );
            let mut ctx = match backend().and_then(|b| {
                model.new_context(b, params).map_err(|e| {
                    EngineError::Runtime(format!("creating the generation context: {e}"))
                })
            }) {
                Ok(ctx) => ctx,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let mut batch = LlamaBatch::new(batch_tokens as usize, 1);
            let mut kv = KvState {
                cached: Vec::new(),
                scale: 0.0,
                logits_at: None,
            };
            for job in inbox {
                // Only a generation that ends cleanly leaves logits the next one may start from.
                let ready_logits = kv.logits_at.take();
                let job = match job {
                    Job::Generate(job) => job,
                    Job::ClearCache(done) => {
                        ctx.clear_kv_cache();
                        kv.cached.clear();
                        let _ = done.send(());
                        continue;
                    }
                    Job::Score(job) => {
                        let out = job.out.clone();
                        let result = score_job(
                            &model,
                            &mut ctx,
                            &mut batch,
                            batch_tokens as usize,
                            &mut kv,
                            adapter.as_mut(),
                            job,
                        );
                        if result.is_err() {
                            ctx.clear_kv_cache();
                            kv.cached.clear();
                        }
                        let _ = out.send(result);
                        continue;
                    }
                };
                let out = job.out.clone();
                // This clone keeps the flag alive until the callback is detached again.
                let cancel = job.cancel.clone();
                abort.watch(Some(cancel.flag()));
                let result = run_job(
                    &model,
                    &mut ctx,
                    &mut batch,
                    batch_tokens as usize,
                    &mut kv,
                    ready_logits,
                    adapter.as_mut(),
                    cache.as_ref(),
                    job,
                );
                abort.watch(None);
                drop(cancel);
                if result.is_err() {
                    // The cache may hold half a batch; start clean next time.
                    ctx.clear_kv_cache();
                    kv.cached.clear();
                }
                let _ = out.send(WorkerMsg::Done(result));
            }
        },
    )
}

/// How many tokens `a` and `b` share from the start.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Let llama.cpp fit the model into free GPU memory (1 GiB margin per device, context of at
/// least 2048 tokens); returns the layers it offloads. On failure everything is offloaded and
/// llama.cpp's own error surfaces at load time.
pub(super) fn fit_to_memory(
    mut params: std::pin::Pin<&mut LlamaModelParams>,
    path: &Path,
    config: &ChatModelConfig,
) -> u32 {
    let Some(cpath) = path.to_str().and_then(|p| std::ffi::CString::new(p).ok()) else {
        return default_gpu_layers();
    };
    let mut cparams =
        LlamaContextParams::default().with_n_ctx(NonZeroU32::new(if config.context_tokens == 0 {
            8192
        } else {
            config.context_tokens
        }));
    let mut margins = vec![1usize << 30; crate::engine::ffi::max_devices()];
    match params.as_mut().fit_params(
        &cpath,
        &mut cparams,
        &mut margins,
        2048,
        llama_cpp_sys_2::GGML_LOG_LEVEL_ERROR,
    ) {
        // Negative means every layer (llama.cpp's default, which `fit_params` keeps when the
        // whole model fits).
        Ok(_) => u32::try_from(params.n_gpu_layers()).unwrap_or(u32::MAX),
        Err(e) => {
            tracing::warn!(path = %path.display(), "could not fit the model to GPU memory: {e}");
            default_gpu_layers()
        }
    }
}

/// The context settings shared by the generator and the bare benchmark loop.
pub(super) fn context_params(context: u32, batch_tokens: u32, threads: i32) -> LlamaContextParams {
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(context))
        .with_n_batch(batch_tokens)
        .with_n_ubatch(batch_tokens)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
}

pub(super) fn runtime(e: impl std::fmt::Display) -> EngineError {
    EngineError::Runtime(e.to_string())
}

/// The sampler chain for `request`; with `forbid_end`, end-of-turn tokens are masked so the
/// reply cannot stop before its length floor.
pub(super) fn build_sampler(
    model: &LlamaModel,
    request: &GenerateRequest,
    forbid_end: bool,
) -> Result<LlamaSampler, EngineError> {
    let s = &request.sampling;
    let mut chain = Vec::new();
    if forbid_end {
        let vocab = model.vocab();
        let biases: Vec<LlamaLogitBias> = [vocab.eos(), vocab.eot()]
            .into_iter()
            .filter(|t| t.0 >= 0)
            .map(|t| LlamaLogitBias::new(t, f32::NEG_INFINITY))
            .collect();
        chain.push(LlamaSampler::logit_bias(model.n_vocab(), &biases));
    }
    if let Some(grammar) = &request.grammar {
        chain.push(
            LlamaSampler::grammar(model, grammar, "root")
                .map_err(|e| EngineError::Grammar(e.to_string()))?,
        );
    }
    if s.repeat_penalty != 1.0 && s.repeat_last_n > 0 {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            s.repeat_last_n,
            s.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if s.dry_multiplier > 0.0 {
        // llama.cpp's defaults: base 1.75, breakers at line ends, colons, quotes and bold
        // markers. The window is explicit: this build clamps -1 ("the context") to 0, which
        // turns DRY off.
        chain.push(LlamaSampler::dry(
            model,
            s.dry_multiplier,
            1.75,
            s.dry_allowed_length,
            DRY_WINDOW,
            ["\n", ":", "\"", "*"],
        ));
    }
    if s.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if s.top_k > 0 {
            chain.push(LlamaSampler::top_k(s.top_k));
        }
        if s.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(s.top_p, 1));
        }
        if s.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(s.min_p, 1));
        }
        chain.push(LlamaSampler::temp(s.temperature));
        chain.push(LlamaSampler::dist(s.seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

/// Set the adapter's strength for the next evaluation. The adapter changes every key and
/// value, so a new scale invalidates the whole cache.
pub(super) fn apply_adapter_scale(
    ctx: &mut LlamaContext<'_>,
    kv: &mut KvState,
    adapter: Option<&mut LlamaLoraAdapter>,
    requested: f32,
) -> Result<(), EngineError> {
    let scale = if adapter.is_some() { requested } else { 0.0 };
    if scale != kv.scale {
        if let Some(a) = adapter {
            if scale == 0.0 {
                ctx.lora_adapter_remove(a).map_err(runtime)?;
            } else {
                ctx.lora_adapter_set(a, scale).map_err(runtime)?;
            }
        }
        ctx.clear_kv_cache();
        kv.cached.clear();
        kv.scale = scale;
    }
    Ok(())
}

/// Evaluate a whole sequence with logits at every scored position (the cache is rebuilt: a
/// score is a fresh pass, not a continuation).
pub(super) fn score_job(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    batch_tokens: usize,
    kv: &mut KvState,
    adapter: Option<&mut LlamaLoraAdapter>,
    job: ScoreJob,
) -> Result<Scored, EngineError> {
    let _span = tracing::info_span!("score", tokens = job.tokens.len()).entered();
    let n_ctx = ctx.n_ctx() as usize;
    if job.tokens.len() > n_ctx {
        return Err(EngineError::ContextFull {
            needed: job.tokens.len(),
            available: n_ctx,
        });
    }
    apply_adapter_scale(ctx, kv, adapter, job.scale)?;
    ctx.clear_kv_cache();
    kv.cached.clear();
    let n_vocab = usize::try_from(model.n_vocab()).unwrap_or(0);
    let tokens = &job.tokens;
    let mut scored = Scored::default();
    // Position i's logits predict token i + 1.
    let last_input = tokens.len() - 1;
    let mut pos = 0;
    while pos < last_input {
        if job.cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let end = (pos + batch_tokens).min(last_input);
        batch.clear();
        for (i, token) in tokens.iter().enumerate().take(end).skip(pos) {
            batch
                .add(*token, i as i32, &[0], i + 1 >= job.from)
                .map_err(runtime)?;
        }
        ctx.decode(batch).map_err(runtime)?;
        for i in pos.max(job.from - 1)..end {
            let logits = ctx.get_logits_ith((i - pos) as i32);
            let logits = &logits[..n_vocab.min(logits.len())];
            let target = tokens[i + 1].0 as usize;
            let (best, max) =
                logits
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, (j, &v)| {
                            if v > acc.1 {
                                (j, v)
                            } else {
                                acc
                            }
                        },
                    );
            let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
            let log_z = f64::from(max) + sum.ln();
            let target_logit = logits.get(target).copied().unwrap_or(f32::NEG_INFINITY);
            scored.nll.push((log_z - f64::from(target_logit)) as f32);
            scored.argmax.push(best as u32);
        }
        kv.cached.extend_from_slice(&tokens[pos..end]);
        pos = end;
    }
    Ok(scored)
}

/// One generation. `ready_logits`: where the previous generation left the logits of the last
/// cached token, if nothing was evaluated since.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_job(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    batch_tokens: usize,
    kv: &mut KvState,
    ready_logits: Option<i32>,
    adapter: Option<&mut LlamaLoraAdapter>,
    cache: Option<&super::prompt_cache::PromptCache>,
    job: GenerateJob,
) -> Result<Generation, EngineError> {
    let _span = tracing::info_span!("generate", prompt_tokens = job.prompt.len()).entered();
    let started = Instant::now();
    let GenerateJob {
        prompt,
        request,
        cancel,
        out,
    } = job;
    let n_ctx = ctx.n_ctx() as usize;
    if prompt.len() + 1 >= n_ctx {
        return Err(EngineError::ContextFull {
            needed: prompt.len() + 1,
            available: n_ctx,
        });
    }
    let max_new = request.max_tokens.min(n_ctx - prompt.len() - 1);
    let mut sampler = build_sampler(model, &request, false)?;
    let mut floor_sampler = if request.min_tokens > 0 || request.min_words > 0 {
        Some(build_sampler(model, &request, true)?)
    } else {
        None
    };
    if request.penalize_prompt && request.grammar.is_none() {
        for &t in &prompt {
            sampler.accept(t);
            if let Some(floor) = floor_sampler.as_mut() {
                floor.accept(t);
            }
        }
    }

    apply_adapter_scale(ctx, kv, adapter, request.adapter_scale)?;
    let cache = cache.filter(|_| request.cache_prompt);
    let in_memory = common_prefix(&kv.cached, &prompt);
    let mut from_disk = 0;
    if let Some(c) = cache {
        match c.best(&prompt, kv.scale) {
            Some((file, shared)) if shared >= in_memory + super::prompt_cache::MIN_GAIN => {
                // `load` empties the context first, whether or not the file reads.
                kv.cached = c.load(ctx, &file).unwrap_or_default();
                from_disk = common_prefix(&kv.cached, &prompt);
            }
            _ => {}
        }
    }

    // Keep the longest shared prefix; at least one prompt token is evaluated for fresh logits,
    // unless the cache holds exactly this prompt with its last logits (a prefill, see
    // `max_tokens: 0`), which is then sampled from as it stands.
    let shared = common_prefix(&kv.cached, &prompt);
    let ready_logits = ready_logits
        .filter(|_| from_disk == 0 && shared == prompt.len() && shared == kv.cached.len());
    let mut common = if ready_logits.is_some() {
        shared
    } else {
        shared.min(prompt.len() - 1)
    };
    // With ready logits the cache holds exactly the prompt: nothing to remove.
    if ready_logits.is_none()
        && !ctx
            .clear_kv_cache_seq(Some(0), u32::try_from(common).ok(), None)
            .unwrap_or(false)
    {
        ctx.clear_kv_cache();
        common = 0;
    }
    kv.cached.truncate(common);

    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        reused_tokens: common,
        ..Default::default()
    };
    let cancelled = |stats: GenerationStats, text: String| {
        Ok(Generation {
            text,
            finish: FinishReason::Cancelled,
            stats,
        })
    };

    let mut pos = common;
    while pos < prompt.len() {
        if cancel.is_cancelled() {
            return cancelled(stats, String::new());
        }
        let end = (pos + batch_tokens).min(prompt.len());
        batch.clear();
        for (i, token) in prompt.iter().enumerate().take(end).skip(pos) {
            batch
                .add(*token, i as i32, &[0], i + 1 == prompt.len())
                .map_err(runtime)?;
        }
        if let Err(e) = ctx.decode(batch) {
            if cancel.is_cancelled() {
                // Aborted between two graph nodes: the cache may hold part of the batch.
                ctx.clear_kv_cache();
                kv.cached.clear();
                return cancelled(stats, String::new());
            }
            return Err(runtime(e));
        }
        kv.cached.extend_from_slice(&prompt[pos..end]);
        pos = end;
    }
    stats.from_disk_tokens = from_disk;
    // Keep this evaluation for later processes when it started cold: not when it continued
    // one kept already (a format's head is saved once, not again with every topic's sources),
    // nor when it continued the previous step in this process (the chain's later steps).
    if let Some(c) = cache {
        let cold = from_disk == 0 && in_memory < super::prompt_cache::MIN_GAIN;
        if cold && prompt.len() >= super::prompt_cache::MIN_SAVE {
            c.save(ctx, &kv.cached, kv.scale);
        }
    }
    stats.prompt_ms = started.elapsed().as_secs_f64() * 1e3;

    let vocab = model.vocab();
    let mut text = TextStream::new(&request.stop);
    let mut logits_at = ready_logits.unwrap_or(batch.n_tokens() - 1);
    let mut finish = FinishReason::Length;
    let mut first_token_at: Option<Instant> = None;
    let mut pending = String::new();
    let mut sent_any = false;
    let mut last_flush = Instant::now();
    let mut words = WordCount::default();
    while stats.generated_tokens < max_new {
        if cancel.is_cancelled() {
            finish = FinishReason::Cancelled;
            break;
        }
        let token = match floor_sampler.as_mut() {
            Some(floor)
                if stats.generated_tokens < request.min_tokens
                    || words.words < request.min_words =>
            {
                let t = floor.sample(ctx, logits_at);
                // Keep the main chain's grammar and penalty history in step.
                sampler.accept(t);
                t
            }
            _ => sampler.sample(ctx, logits_at),
        };
        if first_token_at.is_none() {
            first_token_at = Some(Instant::now());
            stats.first_token_ms = started.elapsed().as_secs_f64() * 1e3;
        }
        if vocab.is_eog(token) {
            finish = FinishReason::EndOfText;
            break;
        }
        stats.generated_tokens += 1;
        match text.feed(&vocab.token_to_piece(token, false, None)) {
            Fed::Text(piece) => {
                words.feed(&piece);
                pending.push_str(&piece);
                // The first piece goes out at once (time to first token); later ones at most
                // every FLUSH_SECONDS: on small machines every wake-up of the receiving thread
                // competes with llama.cpp's spinning OpenMP workers for a core.
                if !pending.is_empty()
                    && (!sent_any || last_flush.elapsed().as_secs_f64() >= FLUSH_SECONDS)
                {
                    let _ = out.send(WorkerMsg::Piece(std::mem::take(&mut pending)));
                    sent_any = true;
                    last_flush = Instant::now();
                }
            }
            Fed::Stopped(piece) => {
                pending.push_str(&piece);
                finish = FinishReason::StopSequence;
                break;
            }
        }
        if stats.generated_tokens == max_new {
            break;
        }
        batch.clear();
        batch
            .add(token, kv.cached.len() as i32, &[0], true)
            .map_err(runtime)?;
        if let Err(e) = ctx.decode(batch) {
            if cancel.is_cancelled() {
                ctx.clear_kv_cache();
                kv.cached.clear();
                finish = FinishReason::Cancelled;
                break;
            }
            return Err(runtime(e));
        }
        kv.cached.push(token);
        logits_at = 0;
    }
    if finish != FinishReason::StopSequence {
        pending.push_str(&text.finish());
    }
    if !pending.is_empty() {
        let _ = out.send(WorkerMsg::Piece(pending));
    }
    if let Some(first) = first_token_at {
        stats.decode_ms = first.elapsed().as_secs_f64() * 1e3;
        if stats.generated_tokens > 1 && stats.decode_ms > 0.0 {
            stats.tokens_per_second = (stats.generated_tokens - 1) as f64 / (stats.decode_ms / 1e3);
        }
    }
    if !kv.cached.is_empty() {
        // Every way out of the loop above leaves the last decode's logits at `logits_at`, and
        // they belong to the last cached token (a sampled token that ended the loop was not
        // evaluated, so it is not cached either).
        kv.logits_at = Some(logits_at);
    }
    if finish == FinishReason::Cancelled {
        return cancelled(stats, text.text().to_string());
    }
    Ok(Generation {
        text: text.text().to_string(),
        finish,
        stats,
    })
}
