//! The training pipeline: the user's own writing → instruction dataset → LoRA in candle → a
//! GGUF adapter that llama.cpp serves next to the unchanged base model.
//!
//! - `dataset`: back-translated instruction → reply pairs (reply = the user's text, verbatim),
//!   filters, a held-out split by document, a replay set; versioned and stored.
//! - `llama`: the llama-family forward pass in candle on the GGUF's dequantized weights;
//!   `fused`: its CPU kernels with backward passes (RMSNorm, RoPE, SwiGLU, per-example
//!   attention, cross-entropy).
//! - `optim`: AdamW with warm-up + cosine decay, gradient accumulation and clipping.
//! - `trainer`: packing, the loop, held-out evaluation with early stopping, checkpoints and
//!   resume, cancellation, progress events; `plan` for `--dry-run`.
//! - `export`: the GGUF LoRA file; `adapters`: the registry (lineage, activation per channel,
//!   rollback, refusal of an adapter made for another base model).
//! - [`configure_process`]: the process-wide CPU settings training depends on, set by the shells
//!   first thing in `main`.

pub mod adapters;
pub mod dataset;
pub mod export;
mod fused;
pub mod llama;
pub mod optim;
pub mod preferences;
pub mod trainer;

pub use adapters::{AdapterChoice, AdapterError};
pub use dataset::{Dataset, DatasetParams};
pub use llama::{LoraConfig, LoraModel, Pass, Target};
pub use trainer::{
    plan, train, PreferenceObjective, PreferenceParams, TrainEvent, TrainOutcome, TrainParams,
    TrainPlan,
};

use std::path::PathBuf;

/// Fixes the process-wide settings that CPU training depends on. Call it first thing in
/// `main`: it sets environment variables, which is only sound before other threads start.
/// Settings the user has made are left alone.
///
/// - `CANDLE_NUM_THREADS=1` gives candle's elementwise "barrier pool" no threads of its own.
///   Its threads spin for about half a millisecond after every op above 64k elements, on the
///   cores that gemm and the fused kernels (rayon) need. The heavy elementwise work is fused
///   into rayon kernels, and what candle still runs there (summing gradients) is faster
///   inline. Matrix products keep all cores: candle sizes them by `RAYON_NUM_THREADS`.
/// - `RAYON_NUM_THREADS` is set to the count candle would choose (physical cores). Unset,
///   candle parses `/proc/cpuinfo` again for every matrix product.
/// - On glibc, one malloc arena. Steps run on whichever worker of candle's pool picks them up
///   (see `trainer`), and each worker's arena kept a step's freed activations for itself:
///   peak memory then sometimes rose by half.
///
/// Together with running each step inside candle's pool (`trainer`), they made a CPU training
/// step ~25% faster on 2 cores.
pub fn configure_process() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let physical = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", physical.to_string());
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator parameters; glibc applies M_ARENA_MAX to
        // arenas created afterwards, and no other thread exists yet.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Errors from building datasets and training; each names the file or step concerned.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The base model cannot be trained on.
    #[error("{path}: training is not supported for the {architecture:?} architecture yet (supported: llama, e.g. SmolLM2 and Llama 3.x; qwen2, e.g. Qwen2.5; qwen3)")]
    UnsupportedArchitecture {
        /// The model file.
        path: PathBuf,
        /// Its `general.architecture`.
        architecture: String,
    },
    /// The base model file is damaged or lacks something the trainer needs.
    #[error("{path}: {reason}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The dataset is unusable.
    #[error("dataset: {0}")]
    Data(String),
    /// No dataset has been built yet.
    #[error("no dataset yet; build one with `twin dataset build`")]
    NoDataset,
    /// A checkpoint could not be read back.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Writing the adapter failed.
    #[error("adapter export: {0}")]
    Export(String),
    /// A tensor operation failed.
    #[error("training computation: {0}")]
    Tensor(#[from] candle_core::Error),
    /// The inference engine failed (tokenizer, back-translation, scoring).
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A prompt template failed, or a structured step answered malformed JSON.
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    /// The user cancelled; finished work (checkpoints, cached instructions) is kept.
    #[error("cancelled")]
    Cancelled,
}

crate::error::classify!(TrainError {
    kind: Self::Cancelled => Cancelled, Self::NoDataset => NeedsSetup, Self::Io { .. } => Io,
        Self::UnsupportedArchitecture { .. } | Self::Model { .. } | Self::Data(_) => BadInput;
    inner: Engine, Store, Prompt;
    path: Self::UnsupportedArchitecture { path, .. } | Self::Model { path, .. } | Self::Io { path, .. } => path.as_path();
});
