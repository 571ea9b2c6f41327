//! OpenAI's wire format, as far as Twin serves it: the requests it reads, the error shape it
//! answers with, and the conversions to and from twin-core's types.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use twin_core::engine::{ChatMessage, FinishReason};
use twin_core::error::{ErrorKind, TwinError};

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// A model id from `GET /v1/models`; `+library` at its end grounds the answer.
    pub model: String,
    /// The conversation.
    pub messages: Vec<InMessage>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Sampling temperature (0: greedy).
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// New tokens at most (the older name).
    pub max_tokens: Option<u32>,
    /// New tokens at most.
    pub max_completion_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Option<Stop>,
    /// Sampling seed: the same seed and request give the same text.
    pub seed: Option<i64>,
    /// Choices wanted; Twin makes one.
    pub n: Option<u32>,
    /// `include_usage`: a last chunk with the token counts.
    pub stream_options: Option<StreamOptions>,
    /// Twin's extension: ground the answer in the user's library and return its sources.
    #[serde(default)]
    pub grounded: bool,
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop sequence.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The sequences, empty ones dropped.
    pub fn into_vec(self) -> Vec<String> {
        let all = match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        };
        all.into_iter().filter(|s| !s.is_empty()).collect()
    }
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send the usage counts in a last chunk.
    #[serde(default)]
    pub include_usage: bool,
}

/// A message as clients send it.
#[derive(Debug, Deserialize)]
pub struct InMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// Text, or a list of parts of which the text parts are read.
    pub content: Option<Content>,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts (`{"type": "text", "text": ...}`); other kinds are refused.
    Parts(Vec<Part>),
}

/// One part of a message's content.
#[derive(Debug, Deserialize)]
pub struct Part {
    /// `text`, or a kind Twin cannot read (`image_url`, `input_audio`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a text part.
    pub text: Option<String>,
}

impl InMessage {
    /// The message as the engine reads it: `developer` is a system message, text parts are
    /// joined.
    pub fn into_chat(self) -> Result<ChatMessage, ApiError> {
        let role = match self.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return Err(ApiError::invalid(
                    format!("messages: role {other:?} is not supported (system, user, assistant)"),
                    Some("messages"),
                ))
            }
        };
        let content = match self.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = Vec::new();
                for part in parts {
                    match (part.kind.as_str(), part.text) {
                        ("text", Some(t)) => text.push(t),
                        (kind, _) => {
                            return Err(ApiError::invalid(
                                format!("messages: content of type {kind:?} is not supported; Twin reads text"),
                                Some("messages"),
                            ))
                        }
                    }
                }
                text.join("\n")
            }
        };
        Ok(ChatMessage {
            role: role.into(),
            content,
        })
    }
}

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    /// The client's model name; the library's embedding model answers whatever it is.
    #[serde(default)]
    pub model: Option<String>,
    /// One text or several (token arrays are refused).
    pub input: serde_json::Value,
    /// `float` (the default) or `base64` (little-endian f32, what OpenAI's clients ask for).
    pub encoding_format: Option<String>,
}

impl EmbeddingsRequest {
    /// The texts to embed.
    pub fn texts(&self) -> Result<Vec<String>, ApiError> {
        let bad =
            || ApiError::invalid("input must be a string or a list of strings", Some("input"));
        let texts = match &self.input {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(String::from).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
            _ => return Err(bad()),
        };
        if texts.is_empty() || texts.iter().any(|t| t.is_empty()) {
            return Err(ApiError::invalid("input must not be empty", Some("input")));
        }
        Ok(texts)
    }
}

/// OpenAI's name for why a choice ended.
pub fn finish_reason(finish: FinishReason) -> &'static str {
    match finish {
        FinishReason::Length => "length",
        FinishReason::EndOfText | FinishReason::StopSequence | FinishReason::Cancelled => "stop",
    }
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's error type.
    pub kind: &'static str,
    /// OpenAI's error code, where it has one.
    pub code: Option<&'static str>,
    /// The parameter at fault.
    pub param: Option<&'static str>,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A request Twin cannot serve as sent (400).
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: None,
            param,
            message: message.into(),
        }
    }

    /// No token, or the wrong one (401).
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
            param: None,
            message: "missing or wrong API key: send the token from the data folder's api-token \
                      file (shown by `twin serve` and in Settings) as `Authorization: Bearer <token>`"
                .into(),
        }
    }

    /// An unknown path (404).
    pub fn no_route(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: Some("unknown_url"),
            param: None,
            message: format!(
                "unknown URL {path}: Twin serves /v1/models, /v1/chat/completions and /v1/embeddings"
            ),
        }
    }
}

impl From<TwinError> for ApiError {
    fn from(e: TwinError) -> Self {
        let (status, kind, code) = match e.kind {
            ErrorKind::NotFound => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
            ),
            ErrorKind::BadInput => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
            ErrorKind::NeedsSetup => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("needs_setup"),
            ),
            ErrorKind::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("busy"),
            ),
            ErrorKind::Cancelled => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("cancelled"),
            ),
            ErrorKind::Io | ErrorKind::Failed => {
                (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None)
            }
        };
        Self {
            status,
            kind,
            code,
            param: None,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        });
        (self.status, axum::Json(body)).into_response()
    }
}
