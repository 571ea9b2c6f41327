//! The reference loop `twin bench draft` measures the generator against. It stays in the engine
//! because only the engine talks to llama.cpp.

use super::*;

/// Timings of [`bare_decode`].
#[derive(Clone, Debug, Serialize)]
pub struct BareDecode {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Prompt evaluation time, ms.
    pub prompt_ms: f64,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Generated tokens per second.
    pub tokens_per_second: f64,
}

/// The baseline for `twin bench draft`: llama.cpp's plain decode loop (greedy sampling, no
/// worker thread, channel, text streaming or stop detection) on `prompt`, for exactly
/// `n_tokens` tokens, with the same threads and context as a [`ChatModel`] would use.
pub fn bare_decode(
    path: &Path,
    prompt: &str,
    n_tokens: usize,
    config: &ChatModelConfig,
) -> Result<BareDecode, EngineError> {
    crate::engine::validate_gguf(path)?;
    let backend = backend()?;
    let gpu_layers = config.gpu_layers.unwrap_or_else(default_gpu_layers);
    let model = LlamaModel::load_from_file(
        backend,
        path,
        &LlamaModelParams::default().with_n_gpu_layers(gpu_layers),
    )
    .map_err(|e| EngineError::Load {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let context = match config.context_tokens {
        0 => model.n_ctx_train().min(8192),
        n => n,
    };
    let threads = crate::engine::llama_threads(config.threads);
    let batch_tokens = config.batch_tokens.clamp(8, context);
    let params = context_params(context, batch_tokens, threads);
    let mut ctx = model.new_context(backend, params).map_err(runtime)?;
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(batch_tokens as usize, 1);
    let started = Instant::now();
    for (start, slice) in tokens.chunks(batch_tokens as usize).enumerate() {
        batch.clear();
        for (i, t) in slice.iter().enumerate() {
            let pos = start * batch_tokens as usize + i;
            batch
                .add(*t, pos as i32, &[0], pos + 1 == tokens.len())
                .map_err(runtime)?;
        }
        ctx.decode(&mut batch).map_err(runtime)?;
    }
    let prompt_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut sampler = LlamaSampler::greedy();
    let mut logits_at = batch.n_tokens() - 1;
    let started = Instant::now();
    for pos in tokens.len()..tokens.len() + n_tokens {
        let token = sampler.sample(&ctx, logits_at);
        batch.clear();
        batch.add(token, pos as i32, &[0], true).map_err(runtime)?;
        ctx.decode(&mut batch).map_err(runtime)?;
        logits_at = 0;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(BareDecode {
        prompt_tokens: tokens.len(),
        prompt_ms,
        generated_tokens: n_tokens,
        tokens_per_second: n_tokens as f64 / seconds.max(1e-9),
    })
}
