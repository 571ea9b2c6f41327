//! `twin bench api`: what serving through HTTP costs over calling the engine directly — the
//! same request, greedy, on a cleared KV cache, alternately through [`ChatModel::generate`]
//! and through `POST /v1/chat/completions` (streamed, read by a real HTTP client).
//!
//! [`ChatModel::generate`]: twin_core::engine::ChatModel::generate

use crate::Server;
use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::Instant;
use twin_core::bench::draft::median;
use twin_core::bench::{row, BenchRow};
use twin_core::engine::{ChatMessage, GenerateRequest, Sampling};
use twin_core::error::TwinError;
use twin_core::progress::CancelToken;
use twin_core::service::{Twin, TWIN_ID};

/// One timed generation: first token and decode speed.
#[derive(Clone, Copy, Debug)]
struct Timed {
    first_token_ms: f64,
    tokens_per_second: f64,
}

/// Time `runs` requests of up to `tokens` tokens each way and tabulate the medians.
pub fn api_overhead(
    twin: Arc<Twin>,
    runs: usize,
    tokens: usize,
) -> Result<Vec<BenchRow>, TwinError> {
    let failed = |e: &dyn std::fmt::Display| TwinError::failed(e.to_string());
    let server = Server::start(Arc::clone(&twin), 0).map_err(|e| failed(&e))?;
    let serving = twin.serving_model(TWIN_ID)?;
    let model = Arc::clone(&serving.loaded.model);
    let prompt = "Write a short LinkedIn post about pricing a small product.";
    let request = GenerateRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: prompt.into(),
        }],
        max_tokens: tokens,
        sampling: Sampling::greedy(),
        adapter_scale: serving.adapter_scale,
        ..GenerateRequest::default()
    };
    let body = serde_json::json!({
        "model": TWIN_ID,
        "messages": [{ "role": "user", "content": prompt }],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": { "include_usage": true },
    })
    .to_string();
    let url = format!("{}/chat/completions", server.base_url());
    let bearer = format!("Bearer {}", server.token());

    let direct = || -> Result<Timed, TwinError> {
        model.clear_cache().map_err(TwinError::from)?;
        let started = Instant::now();
        let mut first = None;
        let g = model
            .generate(&request, &CancelToken::new(), &mut |_| {
                first.get_or_insert_with(|| started.elapsed().as_secs_f64());
            })
            .map_err(TwinError::from)?;
        let total = started.elapsed().as_secs_f64();
        let first = first.unwrap_or(total);
        Ok(Timed {
            first_token_ms: first * 1e3,
            tokens_per_second: g.stats.generated_tokens.saturating_sub(1) as f64
                / (total - first).max(1e-9),
        })
    };
    let over_http = || -> Result<Timed, TwinError> {
        model.clear_cache().map_err(TwinError::from)?;
        let started = Instant::now();
        let response = ureq::post(&url)
            .header("Authorization", &bearer)
            .content_type("application/json")
            .send(&body)
            .map_err(|e| failed(&e))?;
        let mut first = None;
        let mut tokens = 0usize;
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let line = line.map_err(|e| failed(&e))?;
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let chunk: serde_json::Value = serde_json::from_str(data).map_err(|e| failed(&e))?;
            if chunk["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
            {
                first.get_or_insert_with(|| started.elapsed().as_secs_f64());
            }
            if let Some(n) = chunk["usage"]["completion_tokens"].as_u64() {
                tokens = n as usize;
            }
        }
        let total = started.elapsed().as_secs_f64();
        let first = first.unwrap_or(total);
        Ok(Timed {
            first_token_ms: first * 1e3,
            // Tokens as the usage chunk counts them: one streamed piece often holds several.
            tokens_per_second: tokens.saturating_sub(1) as f64 / (total - first).max(1e-9),
        })
    };

    // One warm-up each way (the model's first run, the server's first connection).
    direct()?;
    over_http()?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for run in 0..runs.max(1) {
        // Alternating which goes first, so neither always follows the other's cache misses.
        if run % 2 == 0 {
            a.push(direct()?);
            b.push(over_http()?);
        } else {
            b.push(over_http()?);
            a.push(direct()?);
        }
    }
    server.stop();
    let first = |v: &[Timed]| median(v.iter().map(|t| t.first_token_ms).collect());
    let speed = |v: &[Timed]| median(v.iter().map(|t| t.tokens_per_second).collect());
    let (fa, fb, sa, sb) = (first(&a), first(&b), speed(&a), speed(&b));
    let note = format!(
        "median of {} runs, {tokens} tokens max, greedy, cold KV cache",
        a.len()
    );
    Ok(vec![
        row(
            "first token, engine directly",
            format!("{fa:.1} ms"),
            note.as_str(),
        ),
        row(
            "first token, through the API (SSE)",
            format!("{fb:.1} ms"),
            format!("+{:.1} ms, ×{:.3} the engine's", fb - fa, fb / fa.max(1e-9)),
        ),
        row(
            "decode, engine directly",
            format!("{sa:.1} tok/s"),
            note.as_str(),
        ),
        row(
            "decode, through the API (SSE)",
            format!("{sb:.1} tok/s"),
            format!("×{:.3} the engine's", sb / sa.max(1e-9)),
        ),
    ])
}
