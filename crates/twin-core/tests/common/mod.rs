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

/// How candle's logits compare with llama.cpp's scoring of the same tokens (from position 1).
pub struct Parity {
    /// Positions where both pick the same most likely token.
    pub agree: usize,
    /// Positions compared.
    pub positions: usize,
    /// Mean NLL of the next token under candle's logits.
    pub candle_nll: f64,
    /// Mean NLL under llama.cpp.
    pub llama_nll: f64,
}

impl Parity {
    /// Compare `logits` (one row per input position) with llama.cpp's `scored` for `tokens`.
    pub fn of(logits: &[Vec<f32>], tokens: &[u32], scored: &twin_core::engine::Scored) -> Self {
        assert_eq!(scored.nll.len(), tokens.len() - 1);
        let mut agree = 0;
        let mut candle_nll = 0.0;
        for i in 0..tokens.len() - 1 {
            let row = &logits[i];
            let (best, max) = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |a, (j, &v)| if v > a.1 { (j, v) } else { a },
                );
            if best as u32 == scored.argmax[i] {
                agree += 1;
            }
            let lse = max as f64
                + row
                    .iter()
                    .map(|&v| ((v - max) as f64).exp())
                    .sum::<f64>()
                    .ln();
            candle_nll += lse - row[tokens[i + 1] as usize] as f64;
        }
        let positions = tokens.len() - 1;
        Self {
            agree,
            positions,
            candle_nll: candle_nll / positions as f64,
            llama_nll: scored.mean_nll(),
        }
    }

    /// The parity bar of the voice-training issue: top-1 agreement on at least 90% of the
    /// positions and mean NLL within 2%.
    pub fn assert_within_bounds(&self, what: &str) {
        let Self {
            agree,
            positions: n,
            candle_nll,
            llama_nll,
        } = *self;
        eprintln!(
            "{what}: top-1 agreement {agree}/{n}; mean NLL candle {candle_nll:.4} llama.cpp {llama_nll:.4}"
        );
        assert!(
            agree * 10 >= n * 9,
            "{what}: top-1 agreement {agree}/{n} is under 90%"
        );
        assert!(
            (candle_nll - llama_nll).abs() / llama_nll < 0.02,
            "{what}: mean NLL differs by more than 2%: candle {candle_nll:.4}, llama.cpp {llama_nll:.4}"
        );
    }
}

/// A chat example as drafting would render it, for the parity checks: its tokens and where the
/// reply starts.
pub fn example_tokens(tokenizer: &twin_core::engine::ChatTokenizer) -> (Vec<u32>, usize) {
    let messages = vec![
        twin_core::engine::ChatMessage::system("You are Nell's writing twin."),
        twin_core::engine::ChatMessage::user("Write a LinkedIn post about: sharp tools"),
    ];
    let reply = "A sharp chisel does the work. A dull one makes you do the work, and then it \
                 slips. Most teams I talk to are fighting dull tools and do not know it.";
    let e = tokenizer.encode_example(&messages, reply).unwrap();
    (e.tokens, e.prompt_len)
}

/// The embedded default chat model.
pub fn smollm2() -> PathBuf {
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    path
}

/// Deterministic pseudo-random values in [lo, hi) (xorshift), for test weights.
pub fn seeded(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + (hi - lo) * ((x >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}
