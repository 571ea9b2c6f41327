//! The engine: the only module that talks to llama.cpp (through llama-cpp-2, pinned exactly).
//!
//! It loads GGUF models and runs embeddings, reranking and generation. Everything else in Twin sees plain
//! Rust types (token counts, `Vec<f32>` vectors, strings); no llama.cpp type leaks out.

mod backend;
pub mod chat_template;
pub mod embed;
mod ffi;
pub mod generate;
pub mod rerank;
mod stream_text;
pub mod tokens;
mod worker;

pub use backend::{compute_devices, ComputeDevice, DeviceKind};
pub use chat_template::ChatMessage;
pub use embed::{Embedder, EmbedderConfig, ModelIdentity};
pub use ffi::QuantType;
pub use generate::{
    ChatModel, ChatModelConfig, ChatModelInfo, FinishReason, GenerateRequest, Generation,
    GenerationStats, Sampling, Scored,
};
pub use rerank::Reranker;
pub use tokens::{ChatTokenizer, EncodedExample};

use std::path::{Path, PathBuf};

/// Errors from the inference runtime; each names the model file when one is involved.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file is missing, damaged or not a model llama.cpp can load.
    #[error("{path}: cannot load model: {reason}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// Why loading failed.
        reason: String,
    },
    /// The model loaded but is not of the kind asked for (e.g. a chat model used for embeddings).
    #[error("{path}: {reason}")]
    WrongKind {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The model's chat template could not render the conversation.
    #[error("{path}: {reason}")]
    Template {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The caller's cancel token was set while the model was working (scoring).
    #[error("cancelled")]
    Cancelled,
    /// A GBNF grammar did not parse.
    #[error("the output grammar is invalid: {0}")]
    Grammar(String),
    /// The prompt does not fit the context window.
    #[error("the prompt needs {needed} tokens but the context holds {available}; shorten it or raise the context size")]
    ContextFull {
        /// Tokens needed.
        needed: usize,
        /// Context size.
        available: usize,
    },
    /// llama.cpp failed while running.
    #[error("llama.cpp: {0}")]
    Runtime(String),
    /// The worker thread that owns the model context went away.
    #[error("the model worker stopped unexpectedly")]
    WorkerGone,
}

crate::error::classify!(EngineError {
    kind: Self::Cancelled => Cancelled,
        Self::Load { .. } | Self::WrongKind { .. } | Self::Template { .. } | Self::ContextFull { .. } => BadInput;
    path: Self::Load { path, .. } | Self::WrongKind { path, .. } | Self::Template { path, .. } => path.as_path();
});

/// Check that `path` is a complete GGUF file before llama.cpp sees it: llama.cpp answers a
/// truncated or foreign file with a null pointer, this answers with the file and the reason.
pub(crate) fn validate_gguf(path: &std::path::Path) -> Result<crate::gguf::Header, EngineError> {
    crate::gguf::read_header(path).map_err(|e| match e {
        crate::gguf::GgufError::Invalid { reason, .. } => EngineError::Load {
            path: path.to_path_buf(),
            reason,
        },
        crate::gguf::GgufError::Io { source, .. } => EngineError::Load {
            path: path.to_path_buf(),
            reason: source.to_string(),
        },
    })
}

/// Number of threads to use when the caller does not say: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// Write `input` requantized to `to` at `output` (see [`QuantType`]).
pub fn requantize(
    input: &Path,
    output: &Path,
    to: QuantType,
    threads: usize,
) -> Result<(), EngineError> {
    let _span = tracing::info_span!("requantize", from = %input.display(), ?to).entered();
    validate_gguf(input)?;
    backend::backend()?;
    ffi::quantize(input, output, to, threads).map_err(|reason| EngineError::Load {
        path: input.to_path_buf(),
        reason,
    })
}

/// The thread count llama.cpp gets for `asked`: at least one, at most twice the cores (a
/// setting of thousands, from a shell or a page, would otherwise start thousands of threads).
pub(crate) fn llama_threads(asked: usize) -> i32 {
    let most = default_threads().saturating_mul(2);
    i32::try_from(asked.clamp(1, most.max(1))).unwrap_or(1)
}
