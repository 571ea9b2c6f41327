//! Reranking with a GGUF cross-encoder: Twin converts a `BertForSequenceClassification`
//! checkpoint into a llama.cpp reranker, its scores match an independent implementation of the
//! same weights (candle's BERT with the pooler and classifier applied by hand), model kinds are
//! kept apart, and a draft's context is ordered by the active reranker's scores.
//!
//! No cross-encoder can be fetched offline, so the test makes one: all-MiniLM-L6-v2's encoder
//! and pooler with a seeded one-label classifier. Its relevance judgements mean nothing; the
//! arithmetic, the plumbing and the ordering are what is checked.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;
use twin_core::draft::{self, DraftRequest, Format};
use twin_core::engine::{ChatModel, ChatModelConfig, Embedder, EmbedderConfig, Reranker};
use twin_core::models::registry;
use twin_core::CancelToken;

/// A copy of all-MiniLM-L6-v2 as a one-label cross-encoder in `dir`.
fn cross_encoder(dir: &Path) -> PathBuf {
    let src = common::minilm_dir();
    let out = dir.join("minilm-cross-encoder");
    std::fs::create_dir_all(&out).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    ] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["architectures"] = json!(["BertForSequenceClassification"]);
    cfg["num_labels"] = json!(1);
    std::fs::write(out.join("config.json"), cfg.to_string()).unwrap();

    // safetensors: 8-byte header length, JSON header, data; append the classifier.
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut data = bytes[8 + n..].to_vec();
    header.remove("__metadata__");
    for (name, shape, values) in [
        (
            "classifier.weight",
            vec![1, 384],
            common::seeded(384, 11, -0.5, 0.5),
        ),
        ("classifier.bias", vec![1], vec![0.25f32]),
    ] {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.into(),
            json!({ "dtype": "F32", "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    let mut head = serde_json::to_vec(&header).unwrap();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut file = (head.len() as u64).to_le_bytes().to_vec();
    file.extend(head);
    file.extend(data);
    std::fs::write(out.join("model.safetensors"), file).unwrap();
    out
}

/// The cross-encoder in candle: BERT on `[CLS] q [SEP] d [SEP]` (one token type, as llama.cpp),
/// then tanh(pooler · [CLS]) and the classifier.
fn candle_scores(folder: &Path, query: &str, docs: &[&str]) -> Vec<f32> {
    let cfg: Config =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json")).unwrap())
            .unwrap();
    let weights = folder.join("model.safetensors");
    // SAFETY: the file is not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
        .unwrap();
    let model = BertModel::load(vb.clone(), &cfg).unwrap();
    let pooler_w = vb.get((384, 384), "pooler.dense.weight").unwrap();
    let pooler_b = vb.get(384, "pooler.dense.bias").unwrap();
    let cls_w = vb.get((1, 384), "classifier.weight").unwrap();
    let cls_b = vb.get(1, "classifier.bias").unwrap();
    let mut tok = Tokenizer::from_file(folder.join("tokenizer.json")).unwrap();
    tok.with_truncation(None).unwrap();
    tok.with_padding(None);
    docs.iter()
        .map(|d| {
            let ids: Vec<u32> = tok.encode((query, *d), true).unwrap().get_ids().to_vec();
            let n = ids.len();
            let ids = Tensor::from_vec(ids, (1, n), &Device::Cpu).unwrap();
            let types = ids.zeros_like().unwrap();
            let mask = Tensor::ones((1, n), DType::U32, &Device::Cpu).unwrap();
            let hidden = model.forward(&ids, &types, Some(&mask)).unwrap();
            let cls = hidden.get(0).unwrap().get(0).unwrap().unsqueeze(0).unwrap();
            let pooled = cls
                .matmul(&pooler_w.t().unwrap())
                .unwrap()
                .broadcast_add(&pooler_b)
                .unwrap()
                .tanh()
                .unwrap();
            let score = pooled
                .matmul(&cls_w.t().unwrap())
                .unwrap()
                .broadcast_add(&cls_b)
                .unwrap();
            score.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
        })
        .collect()
}

const DOCS: [&str; 4] = [
    "Pricing a small product: charge more than feels comfortable and watch who stays.",
    "A dull chisel slips; a sharp one does the work.",
    "Small pull requests get reviewed the same day.",
    "Our newsletter goes out on Sundays with three links and one story.",
];

#[test]
fn a_converted_cross_encoder_scores_like_an_independent_bert() {
    let dir = tempfile::tempdir().unwrap();
    let folder = cross_encoder(dir.path());
    let gguf = dir.path().join("reranker.gguf");
    let converted = twin_core::models::convert_sentence_transformer(
        &folder,
        &gguf,
        &twin_core::models::ConvertOptions { f16: false },
    )
    .unwrap();
    assert!(converted.reranker, "a classifier makes it a reranker");

    let reranker = Reranker::load(&gguf, &EmbedderConfig::default()).unwrap();
    let query = "how should I price my product?";
    let ours = reranker.score(query, &DOCS).unwrap();
    let reference = candle_scores(&folder, query, &DOCS);
    eprintln!("llama.cpp {ours:?}\ncandle    {reference:?}");
    for (a, b) in ours.iter().zip(&reference) {
        assert!(
            (a - b).abs() < 1e-3 + 1e-3 * b.abs(),
            "{ours:?} vs {reference:?}"
        );
    }
    let spread = ours.iter().copied().fold(f32::MIN, f32::max)
        - ours.iter().copied().fold(f32::MAX, f32::min);
    assert!(spread > 1e-3, "scores depend on the document: {ours:?}");

    // Each kind of model is refused where another is expected, naming the file.
    let err = Embedder::load(&gguf, &EmbedderConfig::default()).unwrap_err();
    assert!(
        err.to_string().contains("reranker.gguf") && err.to_string().contains("reranker"),
        "{err}"
    );
    let err = Reranker::load(&common::minilm_gguf(), &EmbedderConfig::default()).unwrap_err();
    assert!(err.to_string().contains("not a reranker"), "{err}");
}

#[test]
fn the_active_reranker_orders_a_drafts_context() {
    let dir = tempfile::tempdir().unwrap();
    let folder = cross_encoder(dir.path());
    let gguf = dir.path().join("reranker.gguf");
    twin_core::models::convert_sentence_transformer(&folder, &gguf, &Default::default()).unwrap();
    let mut library = common::sample_library(&dir.path().join("library"));
    let record = registry::register(library.store(), &gguf, "converted", None, None).unwrap();
    assert_eq!(record.kind, "reranker");
    let model = ChatModel::load(
        &common::smollm2(),
        &ChatModelConfig {
            context_tokens: 4096,
            ..Default::default()
        },
    )
    .unwrap();
    let topic = "how to price a small software product";
    let mut request = DraftRequest::new(topic, Format::Linkedin);
    request.draft_only = true;
    request.expansions = Some(0);
    request.self_query = false;
    // The context is chosen before any writing: stop there (the trace is kept on cancel).
    let context_of = |library: &mut twin_core::Library, request: &DraftRequest| {
        let cancel = CancelToken::new();
        let mut citations = Vec::new();
        let result = draft::draft(library, &model, request, &cancel, &mut |e| {
            if let draft::DraftEvent::Context { citations: c } = e {
                citations = c;
                cancel.cancel();
            }
        });
        assert!(
            matches!(result, Err(draft::DraftError::Cancelled)),
            "{result:?}"
        );
        let trace = library.store().traces(1).unwrap().remove(0);
        (citations, trace)
    };
    let (citations, trace) = context_of(&mut library, &request);
    assert_eq!(
        trace.detail["reranker"],
        json!(record.name),
        "the trace names the reranker"
    );
    assert!(trace.detail["timings"]["rerank_ms"].as_f64().unwrap() > 0.0);

    // Every citation carries the reranker's own score for (topic, chunk), and the best-scored
    // chunk is cited first (MMR only trades relevance against redundancy after the first pick).
    let reranker = Reranker::load(&gguf, &EmbedderConfig::default()).unwrap();
    let chunks: Vec<String> = citations
        .iter()
        .map(|c| {
            library
                .store()
                .chunk_hits(&[c.chunk_id])
                .unwrap()
                .remove(0)
                .text
        })
        .collect();
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let rescored = reranker.score(topic, &refs).unwrap();
    assert!(!rescored.is_empty());
    // (Batched with other candidates in the draft, alone here: llama.cpp's sums differ in the
    // last digits.)
    for (c, s) in citations.iter().zip(&rescored) {
        assert!((c.score - f64::from(*s)).abs() < 2e-3, "{} vs {s}", c.score);
    }
    let best = citations.iter().map(|c| c.score).fold(f64::MIN, f64::max);
    assert_eq!(citations[0].score, best);

    // Switched off per request, the fused order (RRF scores, all under 1/30) is back.
    request.rerank = false;
    let (citations, trace) = context_of(&mut library, &request);
    assert!(trace.detail["reranker"].is_null());
    assert!(
        citations.iter().all(|c| c.score < 1.0 / 30.0),
        "{citations:?}"
    );
}
