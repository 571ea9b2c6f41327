//! The only raw llama.cpp calls in Twin (through llama-cpp-sys-2), for what llama-cpp-2 does
//! not wrap: the device count `fit_params` needs, and the abort callback that lets a cancel
//! stop a prompt evaluation between two graph nodes instead of after the whole batch.

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
