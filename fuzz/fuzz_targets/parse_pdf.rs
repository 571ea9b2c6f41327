#![no_main]
// pdf-extract panics on many damaged files; Twin contains those panics by design
// (`catch_unwind`, and a child process in the shells). libFuzzer's hook would abort on any
// panic, caught or not, so this target restores a quiet hook: what it hunts is what
// containment cannot stop (aborts, stack overflows, hangs, runaway memory).
libfuzzer_sys::fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| twin_core::fuzzing::parse_pdf(data)
);
