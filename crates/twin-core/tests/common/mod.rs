//! Shared set-up for twin-core's integration tests: the real embedded default models, fetched by
//! scripts/fetch-models.sh (the README's test command runs it first).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use twin_core::engine::{Embedder, EmbedderConfig};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The sentence-transformers folder of all-MiniLM-L6-v2.
pub fn minilm_dir() -> PathBuf {
    let dir = repo_root().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "{} is missing: run scripts/fetch-models.sh first",
        dir.display()
    );
    dir
}

/// all-MiniLM-L6-v2 converted to GGUF once per test binary.
pub fn minilm_gguf() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("twin-test-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("all-MiniLM-L6-v2.f16.gguf");
        twin_core::models::convert_sentence_transformer(&minilm_dir(), &out, &Default::default())
            .expect("convert");
        out
    })
    .clone()
}

pub fn embedder() -> Embedder {
    Embedder::load(&minilm_gguf(), &EmbedderConfig::default()).expect("load embedder")
}

pub fn sample_writing() -> PathBuf {
    repo_root().join("assets/sample-writing")
}

/// A library in `dir` with the sample writing imported and embedded on all-MiniLM-L6-v2.
pub fn sample_library(dir: &Path) -> twin_core::Library {
    let mut lib = twin_core::Library::open(dir, EmbedderConfig::default()).unwrap();
    lib.set_embedding_model(&minilm_gguf()).unwrap();
    lib.import(
        &[sample_writing()],
        &twin_core::ImportOptions::default(),
        &twin_core::progress::NoProgress,
        &twin_core::CancelToken::new(),
    )
    .unwrap();
    lib
}
