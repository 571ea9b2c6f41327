//! The only raw llama.cpp calls in Twin (through llama-cpp-sys-2), for what llama-cpp-2 does
//! not wrap: the device count `fit_params` needs, the abort callback that lets a cancel
//! stop a prompt evaluation between two graph nodes instead of after the whole batch, and
//! requantizing a GGUF (`llama_model_quantize`).

use llama_cpp_2::context::params::LlamaContextParams;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// How many GPU devices llama.cpp can split a model across (the length `fit_params` expects
/// for its per-device margins).
pub(crate) fn max_devices() -> usize {
    // SAFETY: llama_max_devices takes no arguments and returns a constant.
    #[allow(unsafe_code)]
    unsafe {
        llama_cpp_sys_2::llama_max_devices()
    }
}

/// Where the abort callback finds the cancel flag of the request being evaluated (null: none).
/// It must outlive the context it is registered with.
#[derive(Debug, Default)]
pub(crate) struct AbortSlot(AtomicPtr<AtomicBool>);

impl AbortSlot {
    /// Point the callback at `flag` for the duration of one request; `None` detaches it.
    /// The caller keeps `flag` alive until it detaches.
    pub(crate) fn watch(&self, flag: Option<&AtomicBool>) {
        let ptr = flag.map_or(std::ptr::null_mut(), |f| {
            f as *const AtomicBool as *mut AtomicBool
        });
        self.0.store(ptr, Ordering::Release);
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn should_abort(data: *mut c_void) -> bool {
    // SAFETY: `data` is the AbortSlot registered in `with_abort_callback`, which outlives the
    // context; the flag it points to is kept alive by the worker until it is detached.
    let slot = unsafe { &*(data as *const AbortSlot) };
    let flag = slot.0.load(Ordering::Acquire);
    !flag.is_null() && unsafe { (*flag).load(Ordering::Relaxed) }
}

/// `params` with llama.cpp's abort callback reading `slot`.
pub(crate) fn with_abort_callback(
    params: LlamaContextParams,
    slot: &AbortSlot,
) -> LlamaContextParams {
    // SAFETY: in the pinned llama-cpp-2 (=0.1.160) `LlamaContextParams` is a struct whose only
    // field is `llama_context_params`; transmute checks at compile time that the sizes are
    // equal, so that field is the whole value. Only the two callback fields are changed.
    #[allow(unsafe_code)]
    unsafe {
        let mut raw: llama_cpp_sys_2::llama_context_params = std::mem::transmute(params);
        raw.abort_callback = Some(should_abort);
        raw.abort_callback_data = slot as *const AbortSlot as *mut c_void;
        std::mem::transmute(raw)
    }
}

/// Weight layouts [`quantize`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantType {
    /// 4-bit blocks with a scale: the layout llama.cpp's CPU backend repacks into its fastest
    /// kernels (AVX2 / NEON interleaved rows).
    Q4_0,
    /// 8-bit blocks with a scale.
    Q8_0,
}

/// Write `input` requantized to `to` at `output` with `threads` threads (llama.cpp's own
/// quantizer; weights already quantized are requantized). llama.cpp reports failure only as a
/// non-zero status, so the reason is what its log said.
pub(crate) fn quantize(
    input: &std::path::Path,
    output: &std::path::Path,
    to: QuantType,
    threads: usize,
) -> Result<(), String> {
    let cstr = |p: &std::path::Path| {
        p.to_str()
            .and_then(|s| std::ffi::CString::new(s).ok())
            .ok_or_else(|| format!("{} is not a path llama.cpp can open", p.display()))
    };
    let (inp, out) = (cstr(input)?, cstr(output)?);
    // SAFETY: default params are plain data; both paths are NUL-terminated and outlive the
    // call; the pointers in the params stay null (no imatrix, overrides or pruning).
    #[allow(unsafe_code)]
    let status = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.nthread = i32::try_from(threads.max(1)).unwrap_or(1);
        params.ftype = match to {
            QuantType::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
            QuantType::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
        };
        params.allow_requantize = true;
        llama_cpp_sys_2::llama_model_quantize(inp.as_ptr(), out.as_ptr(), &params)
    };
    match status {
        0 => Ok(()),
        n => Err(format!("llama.cpp's quantizer failed (status {n})")),
    }
}
