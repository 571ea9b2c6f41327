#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| twin_core::fuzzing::fts_query(data));
