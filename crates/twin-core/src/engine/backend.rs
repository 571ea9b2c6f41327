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

/// What kind of processor a [`ComputeDevice`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU; its memory is the machine's RAM.
    Cpu,
    /// A discrete or integrated GPU, or another accelerator llama.cpp can offload to.
    Gpu,
}

/// A device llama.cpp can run a model on, as this build of it sees the machine.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ComputeDevice {
    /// llama.cpp's name for it (`CPU`, `CUDA0`, `Metal`).
    pub name: String,
    /// Its description (the GPU's product name, the CPU's model).
    pub description: String,
    /// CPU or GPU.
    pub kind: DeviceKind,
    /// Total memory in bytes: physical RAM for the CPU, the GPU's own memory otherwise.
    pub memory_total: u64,
}

/// The devices this build of llama.cpp can use. Asking llama.cpp rather than the OS keeps one
/// answer for RAM (its CPU device reads the physical page count) and for GPU memory (CUDA and
/// Metal report their own), and lists only GPUs this build can actually offload to.
pub fn compute_devices() -> Result<Vec<ComputeDevice>, EngineError> {
    backend()?;
    Ok(llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|d| ComputeDevice {
            kind: match d.device_type {
                llama_cpp_2::LlamaBackendDeviceType::Cpu => DeviceKind::Cpu,
                _ => DeviceKind::Gpu,
            },
            name: d.name,
            description: d.description,
            memory_total: d.memory_total as u64,
        })
        .collect())
}
