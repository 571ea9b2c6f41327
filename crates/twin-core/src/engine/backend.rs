//! The process-wide llama.cpp backend. llama.cpp must be initialised exactly once per process;
//! its log output is routed into `tracing` so it is silent unless asked for (`RUST_LOG=llama=debug`).

use super::EngineError;
use llama_cpp_2::llama_backend::LlamaBackend;
use std::sync::OnceLock;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// The shared backend, initialised on first use.
pub(crate) fn backend() -> Result<&'static LlamaBackend, EngineError> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Runtime(e.clone()))
}

/// GPU layers to offload by default: everything when built with a GPU backend, none otherwise.
pub(crate) fn default_gpu_layers() -> u32 {
    if cfg!(any(feature = "cuda", feature = "metal")) {
        u32::MAX
    } else {
        0
    }
}
