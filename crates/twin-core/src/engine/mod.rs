//! The engine: the only module that talks to llama.cpp (through llama-cpp-2, pinned exactly).
//!
//! It loads GGUF models, runs embeddings today and generation later. Everything else in Twin
//! sees plain Rust types (token counts, `Vec<f32>` vectors, strings); no llama.cpp type leaks out.

mod backend;
pub mod embed;

pub use embed::{Embedder, EmbedderConfig, ModelIdentity};

use std::path::PathBuf;

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
    /// llama.cpp failed while running.
    #[error("llama.cpp: {0}")]
    Runtime(String),
    /// The worker thread that owns the model context went away.
    #[error("the embedding worker stopped unexpectedly")]
    WorkerGone,
}

/// Number of threads to use when the caller does not say: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}
