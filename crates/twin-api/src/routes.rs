//! The routes: models, chat completions (plain and streamed) and embeddings.

use crate::openai::{finish_reason, ApiError, ChatRequest, EmbeddingsRequest};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twin_core::draft::Citation;
use twin_core::engine::{EngineError, GenerateRequest, Generation, Sampling};
use twin_core::error::TwinError;
use twin_core::progress::CancelToken;
use twin_core::service::{ServedModel, TWIN_ID};

/// After a model id, grounds the answer in the user's library: `twin+library`.
pub const LIBRARY_SUFFIX: &str = "+library";
/// New tokens when a request names no limit.
const DEFAULT_MAX_TOKENS: usize = 512;
/// Passages a grounded answer stands on (a draft's default).
const GROUNDING_PASSAGES: usize = 6;
/// Texts one embeddings request may hold.
const MAX_EMBEDDING_INPUTS: usize = 2048;
/// How often an idle stream writes a comment: a write is how a closed connection is noticed,
/// so a client that leaves while the prompt is being read still cancels within this.
const STREAM_HEARTBEAT: Duration = Duration::from_millis(100);

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .fallback(|uri: Uri| async move { ApiError::no_route(uri.path()) })
        .with_state(state)
}

/// Run blocking twin-core work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TwinError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| {
            ApiError::from(TwinError::failed(format!(
                "the request's worker failed: {e}"
            )))
        })?
        .map_err(ApiError::from)
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!("the body is not a valid {what} request: {e}"), None)
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A completion id unique within this server's life.
fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "chatcmpl-{:x}-{}",
        unix_now(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn model_entries(served: &[ServedModel]) -> Vec<Value> {
    let entry = |id: &str, m: &ServedModel| {
        json!({
            "id": id,
            "object": "model",
            "created": m.created,
            "owned_by": "twin",
            "base": m.base,
            "adapter": m.adapter,
        })
    };
    let mut data = Vec::new();
    for m in served {
        data.push(entry(&m.id, m));
        if m.id == TWIN_ID {
            data.push(entry(&format!("{TWIN_ID}{LIBRARY_SUFFIX}"), m));
        }
    }
    data
}

async fn models(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let twin = Arc::clone(&state.twin);
    let served = blocking(move || twin.served_models()).await?;
    Ok(Json(
        json!({ "object": "list", "data": model_entries(&served) }),
    ))
}

async fn model(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let twin = Arc::clone(&state.twin);
    let served = blocking(move || twin.served_models()).await?;
    model_entries(&served)
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| {
            TwinError::new(
                twin_core::error::ErrorKind::NotFound,
                format!("no model {id}; GET /v1/models lists the ids"),
            )
            .into()
        })
}

/// Cancels a generation when the request that started it goes away: the response body of a
/// stream (the client disconnected) or the handler's future (the same, before any output).
struct CancelOnDrop {
    cancel: CancelToken,
    finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.finished {
            tracing::info!(at_ms = %unix_ms(), "the client left; generation cancelled");
            self.cancel.cancel();
        }
    }
}

enum Out {
    Piece(String),
    Done(Result<Generation, EngineError>),
}

fn engine_error(e: EngineError) -> ApiError {
    ApiError::from(TwinError::from(e))
}

/// What a chat request runs: the model, the engine request, and the sources it stands on.
struct Prepared {
    model: Arc<twin_core::engine::ChatModel>,
    request: GenerateRequest,
    citations: Option<Vec<Citation>>,
}

async fn prepare(state: &AppState, req: ChatRequest) -> Result<Prepared, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            "messages must not be empty",
            Some("messages"),
        ));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid(
            "n: Twin writes one choice per request",
            Some("n"),
        ));
    }
    let defaults = Sampling::default();
    let temperature = req.temperature.unwrap_or(defaults.temperature);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            "temperature must be between 0 and 2",
            Some("temperature"),
        ));
    }
    let top_p = req.top_p.unwrap_or(defaults.top_p);
    if !(0.0..=1.0).contains(&top_p) || top_p == 0.0 {
        return Err(ApiError::invalid("top_p must be in (0, 1]", Some("top_p")));
    }
    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .map_or(DEFAULT_MAX_TOKENS, |n| n as usize);
    if max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens must be at least 1",
            Some("max_tokens"),
        ));
    }
    let (model_id, grounded) = match req.model.strip_suffix(LIBRARY_SUFFIX) {
        Some(base) => (base.to_string(), true),
        None => (req.model.clone(), req.grounded),
    };
    let mut messages = req
        .messages
        .into_iter()
        .map(|m| m.into_chat())
        .collect::<Result<Vec<_>, _>>()?;
    let twin = Arc::clone(&state.twin);
    let query = messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.clone());
    let (serving, grounding) = blocking(move || {
        let serving = twin.serving_model(&model_id)?;
        let grounding = match query.filter(|_| grounded) {
            Some(q) if !q.trim().is_empty() => {
                Some(twin.ground(&serving, &q, GROUNDING_PASSAGES)?)
            }
            _ => None,
        };
        Ok((serving, grounding))
    })
    .await?;
    let citations = match grounding {
        Some((grounding, author)) => {
            if let Some(text) = grounding.system_text(&author) {
                match messages.first_mut().filter(|m| m.role == "system") {
                    Some(system) => system.content = format!("{}\n\n{text}", system.content),
                    None => messages.insert(0, twin_core::engine::ChatMessage::system(text)),
                }
            }
            Some(grounding.citations)
        }
        None if grounded => Some(Vec::new()),
        None => None,
    };
    let request = GenerateRequest {
        messages,
        max_tokens,
        sampling: Sampling {
            temperature,
            top_p,
            // OpenAI's seed is any integer; the engine's is 32 bits.
            seed: req.seed.map_or(defaults.seed, |s| s as u32),
            ..defaults
        },
        stop: req.stop.map(|s| s.into_vec()).unwrap_or_default(),
        adapter_scale: serving.adapter_scale,
        ..GenerateRequest::default()
    };
    Ok(Prepared {
        model: Arc::clone(&serving.loaded.model),
        request,
        citations,
    })
}

/// Start generating on the model's worker; pieces and the end arrive on the receiver.
fn start_generation(
    prepared: &Prepared,
) -> (tokio::sync::mpsc::UnboundedReceiver<Out>, CancelOnDrop) {
    let cancel = CancelToken::new();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let model = Arc::clone(&prepared.model);
    let request = prepared.request.clone();
    let token = cancel.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let result = model.generate(&request, &token, &mut |piece| {
            if tx.send(Out::Piece(piece.to_string())).is_err() {
                token.cancel();
            }
        });
        if token.is_cancelled() {
            tracing::info!(
                at_ms = %unix_ms(),
                after_ms = started.elapsed().as_millis() as u64,
                tokens = result.as_ref().map_or(0, |g| g.stats.generated_tokens),
                "cancelled generation ended"
            );
        }
        let _ = tx.send(Out::Done(result));
    });
    (
        rx,
        CancelOnDrop {
            cancel,
            finished: false,
        },
    )
}

fn usage(g: &Generation) -> Value {
    json!({
        "prompt_tokens": g.stats.prompt_tokens,
        "completion_tokens": g.stats.generated_tokens,
        "total_tokens": g.stats.prompt_tokens + g.stats.generated_tokens,
    })
}

async fn chat(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let req: ChatRequest = parse(&body, "chat completion")?;
    let stream = req.stream;
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let model_name = req.model.clone();
    let prepared = prepare(&state, req).await?;
    let (rx, guard) = start_generation(&prepared);
    let head = Head {
        id: completion_id(),
        created: unix_now(),
        model: model_name,
    };
    if stream {
        Ok(stream_response(
            head,
            rx,
            guard,
            prepared.citations,
            include_usage,
        ))
    } else {
        complete(head, rx, guard, prepared.citations).await
    }
}

/// What every chunk of one completion repeats.
struct Head {
    id: String,
    created: u64,
    model: String,
}

async fn complete(
    head: Head,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Out>,
    mut guard: CancelOnDrop,
    citations: Option<Vec<Citation>>,
) -> Result<Response, ApiError> {
    while let Some(out) = rx.recv().await {
        let Out::Done(result) = out else { continue };
        guard.finished = true;
        let g = result.map_err(engine_error)?;
        let mut body = json!({
            "id": head.id,
            "object": "chat.completion",
            "created": head.created,
            "model": head.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": g.text },
                "logprobs": null,
                "finish_reason": finish_reason(g.finish),
            }],
            "usage": usage(&g),
        });
        if let Some(c) = citations {
            body["citations"] = json!(c);
        }
        return Ok(Json(body).into_response());
    }
    Err(TwinError::failed("the generation ended without an answer").into())
}

/// A stream's state between events.
struct Streaming {
    head: Head,
    rx: tokio::sync::mpsc::UnboundedReceiver<Out>,
    guard: CancelOnDrop,
    pending: VecDeque<Event>,
    include_usage: bool,
    done: bool,
}

impl Streaming {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.head.id,
            "object": "chat.completion.chunk",
            "created": self.head.created,
            "model": self.head.model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        })
    }

    fn event(value: &Value) -> Event {
        Event::default().data(value.to_string())
    }
}

fn stream_response(
    head: Head,
    rx: tokio::sync::mpsc::UnboundedReceiver<Out>,
    guard: CancelOnDrop,
    citations: Option<Vec<Citation>>,
    include_usage: bool,
) -> Response {
    let mut state = Streaming {
        head,
        rx,
        guard,
        pending: VecDeque::new(),
        include_usage,
        done: false,
    };
    // The first chunk names the role, as OpenAI's does, and carries the sources.
    let mut first = state.chunk(json!({ "role": "assistant", "content": "" }), None);
    if let Some(c) = citations {
        first["citations"] = json!(c);
    }
    state.pending.push_back(Streaming::event(&first));
    let events = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(e), st));
            }
            if st.done {
                return None;
            }
            match st.rx.recv().await {
                Some(Out::Piece(text)) => {
                    let chunk = st.chunk(json!({ "content": text }), None);
                    st.pending.push_back(Streaming::event(&chunk));
                }
                Some(Out::Done(result)) => {
                    st.done = true;
                    st.guard.finished = true;
                    match result {
                        Ok(g) => {
                            let last = st.chunk(json!({}), Some(finish_reason(g.finish)));
                            st.pending.push_back(Streaming::event(&last));
                            if st.include_usage {
                                let mut u = st.chunk(json!({}), None);
                                u["choices"] = json!([]);
                                u["usage"] = usage(&g);
                                st.pending.push_back(Streaming::event(&u));
                            }
                        }
                        Err(e) => {
                            let e = engine_error(e);
                            let body = json!({ "error": {
                                "message": e.message, "type": e.kind, "param": null, "code": e.code,
                            }});
                            st.pending.push_back(Streaming::event(&body));
                        }
                    }
                    st.pending.push_back(Event::default().data("[DONE]"));
                }
                None => st.done = true,
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(STREAM_HEARTBEAT))
        .into_response()
}

async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req: EmbeddingsRequest = parse(&body, "embeddings")?;
    let texts = req.texts()?;
    if texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(ApiError::invalid(
            format!("input: at most {MAX_EMBEDDING_INPUTS} texts per request"),
            Some("input"),
        ));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                format!("encoding_format {other:?}: use float or base64"),
                Some("encoding_format"),
            ))
        }
    };
    let twin = Arc::clone(&state.twin);
    let (name, vectors, tokens) = blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        twin.embed(&refs)
    })
    .await?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                use base64::Engine;
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": name,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    })))
}
