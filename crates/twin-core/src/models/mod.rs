//! Model files: the registry of GGUF models Twin may use (added, pulled from Hugging Face, or
//! found in Ollama's and LM Studio's folders), downloads, and converting sentence-transformers
//! embedding models to GGUF.

pub mod bert_convert;
pub mod catalog;
pub mod pull;
pub mod registry;

pub use bert_convert::{
    convert_sentence_transformer, ConvertError, ConvertOptions, ConvertedModel,
};
pub use catalog::{recommend, Catalog, CatalogEntry, Machine, Recommendation};
pub use pull::{pull, PullRequest, STALL_TIMEOUT};
pub use registry::{discover, Discovered, ModelKind};

use std::path::PathBuf;

/// Architectures the LoRA trainer implements (`general.architecture` values). Declared here,
/// below both, so the catalog can say which models train without reaching up into `train`.
pub const TRAINABLE_ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3"];

/// Errors from the model registry and downloads; each names the file or URL concerned.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a usable GGUF model.
    #[error("{path}: not a usable GGUF model: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file's sha256 is not the recorded (or announced) one.
    #[error("{path}: sha256 is {actual}, expected {expected}; the file changed or is corrupt")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The expected hash.
        expected: String,
        /// The hash found.
        actual: String,
    },
    /// No registered model matches.
    #[error("no model matches {0:?}; see `twin models list`")]
    NotFound(String),
    /// Several registered models match.
    #[error("{query:?} matches several models: {}", matches.join(", "))]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// The names that match.
        matches: Vec<String>,
    },
    /// A download failed.
    #[error("{url}: {reason}")]
    Download {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The operation was cancelled; a partial download is kept for resuming.
    #[error("cancelled")]
    Cancelled,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// llama.cpp could not load the model.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// No chat model is registered or chosen.
    #[error("no chat model chosen; add one with `twin models add <file.gguf>` (or pick one with `twin models use`)")]
    NoChatModel,
}

crate::error::classify!(ModelError {
    kind: Self::Cancelled => Cancelled, Self::Io { .. } => Io,
        Self::Invalid { .. } | Self::Checksum { .. } | Self::Ambiguous { .. } => BadInput,
        Self::NotFound(_) => NotFound, Self::NoChatModel => NeedsSetup;
    inner: Store, Engine;
    path: Self::Io { path, .. } | Self::Invalid { path, .. } | Self::Checksum { path, .. } => path.as_path();
});

/// The registered chat model `query` names (id, name or path), or the active one.
pub fn resolve_chat_model(
    store: &crate::store::Store,
    query: Option<&str>,
) -> Result<crate::store::ModelRecord, ModelError> {
    let record = match query {
        Some(q) => registry::find(store, q)?,
        None => registry::active(store, ModelKind::Chat)?.ok_or(ModelError::NoChatModel)?,
    };
    if record.kind != ModelKind::Chat.as_str() {
        return Err(ModelError::Invalid {
            path: record.path.clone().into(),
            reason: format!("this is a {} model, not a chat model", record.kind),
        });
    }
    Ok(record)
}

/// The judge's default: the largest registered chat model (size is the best offline proxy
/// for strength among the models a user has).
pub fn strongest_chat_model(
    store: &crate::store::Store,
) -> Result<Option<crate::store::ModelRecord>, ModelError> {
    Ok(store
        .models()?
        .into_iter()
        .filter(|m| m.kind == ModelKind::Chat.as_str() && std::path::Path::new(&m.path).is_file())
        .max_by_key(|m| m.size))
}

/// Verify `record`'s file against its sha256 (fast path on unchanged size/mtime) and load it;
/// traces name it `name@sha256:<prefix>`.
pub fn load_chat_model(
    record: &crate::store::ModelRecord,
    config: &crate::engine::ChatModelConfig,
) -> Result<crate::engine::ChatModel, ModelError> {
    registry::verify(record, false)?;
    let config = crate::engine::ChatModelConfig {
        id: Some(format!(
            "{}@sha256:{}",
            record.name,
            &record.sha256[..12.min(record.sha256.len())]
        )),
        ..config.clone()
    };
    Ok(crate::engine::ChatModel::load(
        std::path::Path::new(&record.path),
        &config,
    )?)
}
