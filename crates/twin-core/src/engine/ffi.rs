//! The only raw llama.cpp calls in Twin (through llama-cpp-sys-2), for what llama-cpp-2 does
//! not wrap. Each is a plain query without pointers; keep this module that small.

/// How many GPU devices llama.cpp can split a model across (the length `fit_params` expects
/// for its per-device margins).
pub(crate) fn max_devices() -> usize {
    // SAFETY: llama_max_devices takes no arguments and returns a constant.
    #[allow(unsafe_code)]
    unsafe {
        llama_cpp_sys_2::llama_max_devices()
    }
}
