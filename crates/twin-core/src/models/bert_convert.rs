//! Convert a sentence-transformers BERT-family folder (config.json, model.safetensors,
//! tokenizer.json, pooling config) into a GGUF that llama.cpp loads as an embedding model.
//!
//! Keys, tensor names and the vocabulary follow llama.cpp's own converter (`BertModel` in
//! `convert_hf_to_gguf.py`), so the file behaves exactly like one made upstream:
//! - WordPiece vocab in "phantom space" form: `##ing` → `ing`, every other normal token gets a
//!   `▁` prefix. llama.cpp's WPM tokenizer prepends `▁` to each word, so without this nearly every
//!   word would become `[UNK]`.
//! - `tokenizer.ggml.token_type_count` is required by llama.cpp's bert loader.
//! - llama.cpp uses the BOS id as `[CLS]`.
//! - Pooling is written into the file; the caller must still L2-normalise the pooled vector.
//! - A cross-encoder (`BertForSequenceClassification`, e.g. ms-marco-MiniLM rerankers) becomes a
//!   GGUF reranker: its pooler and classifier are written as `cls` / `cls.output` and the pooling
//!   is `RANK`, which makes llama.cpp return one relevance score per (query, document) pair.

use crate::gguf::{self, Tensor, TensorType, Value};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Errors from converting a model folder; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A required file is missing or unreadable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The model is of a kind this converter does not handle.
    #[error("{dir}: unsupported model: {reason}")]
    Unsupported {
        /// The model folder.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing the GGUF failed.
    #[error(transparent)]
    Write(#[from] gguf::GgufError),
}

crate::error::classify!(ConvertError {
    kind: Self::File { .. } | Self::Unsupported { .. } => BadInput;
    inner: Write;
    path: Self::File { path, .. } => path.as_path(), Self::Unsupported { dir, .. } => dir.as_path();
});

/// How to convert.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Store matrices as F16 (half the size, no measurable loss for embeddings) rather than F32.
    pub f16: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self { f16: true }
    }
}

/// What the converter produced.
#[derive(Clone, Debug)]
pub struct ConvertedModel {
    /// The GGUF file written.
    pub path: PathBuf,
    /// The model's name (the folder name).
    pub name: String,
    /// Embedding width.
    pub dim: usize,
    /// Longest input in tokens the model was trained for (sentence-transformers `max_seq_length`).
    pub max_tokens: usize,
    /// Tensors written.
    pub n_tensors: usize,
    /// Whether it is a reranker (a cross-encoder with a classification head) rather than an
    /// embedding model.
    pub reranker: bool,
}

// llama.cpp token types: NORMAL=1, CONTROL=3, USER_DEFINED=4.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

struct ModelDir<'a> {
    dir: &'a Path,
}

impl ModelDir<'_> {
    fn file_err(&self, name: &str, reason: impl ToString) -> ConvertError {
        ConvertError::File {
            path: self.dir.join(name),
            reason: reason.to_string(),
        }
    }
    fn json(&self, name: &str) -> Result<Json, ConvertError> {
        let text =
            std::fs::read_to_string(self.dir.join(name)).map_err(|e| self.file_err(name, e))?;
        serde_json::from_str(&text).map_err(|e| self.file_err(name, format!("invalid JSON: {e}")))
    }
    fn unsupported(&self, reason: impl ToString) -> ConvertError {
        ConvertError::Unsupported {
            dir: self.dir.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Map a Hugging Face BERT tensor name to llama.cpp's; `None` for tensors llama.cpp does not use
/// (position ids, masked-LM heads, and the pooler of an embedding model). A cross-encoder's
/// pooler and classifier (`classifier`) are its ranking head.
fn gguf_tensor_name(hf: &str, classifier: bool) -> Option<String> {
    let mut name = hf.strip_prefix("bert.").unwrap_or(hf).to_string();
    if let Some(s) = name.strip_suffix(".gamma") {
        name = format!("{s}.weight");
    } else if let Some(s) = name.strip_suffix(".beta") {
        name = format!("{s}.bias");
    }
    let (base, suffix) = name.rsplit_once('.')?;
    let mapped = match base {
        "embeddings.word_embeddings" => "token_embd".to_string(),
        "embeddings.token_type_embeddings" => "token_types".to_string(),
        "embeddings.position_embeddings" => "position_embd".to_string(),
        "embeddings.LayerNorm" => "token_embd_norm".to_string(),
        "pooler.dense" if classifier => "cls".to_string(),
        "classifier" if classifier => "cls.output".to_string(),
        _ => {
            let (block, sub) = base.strip_prefix("encoder.layer.")?.split_once('.')?;
            let block: usize = block.parse().ok()?;
            let part = match sub {
                "attention.self.query" => "attn_q",
                "attention.self.key" => "attn_k",
                "attention.self.value" => "attn_v",
                "attention.output.dense" => "attn_output",
                "attention.output.LayerNorm" => "attn_output_norm",
                "intermediate.dense" => "ffn_up",
                "output.dense" => "ffn_down",
                "output.LayerNorm" => "layer_output_norm",
                _ => return None,
            };
            format!("blk.{block}.{part}")
        }
    };
    Some(format!("{mapped}.{suffix}"))
}

/// llama.cpp pooling ids: MEAN=1, CLS=2, LAST=3. Read from modules.json → the Pooling module's config.
fn pooling_type(m: &ModelDir) -> Result<u32, ConvertError> {
    let Ok(modules) = m.json("modules.json") else {
        return Ok(1);
    };
    for module in modules.as_array().into_iter().flatten() {
        if module["type"].as_str() != Some("sentence_transformers.models.Pooling") {
            continue;
        }
        let dir = module["path"].as_str().unwrap_or("1_Pooling");
        let cfg = m.json(&format!("{dir}/config.json"))?;
        let on = |k: &str| cfg[k].as_bool() == Some(true);
        return if on("pooling_mode_mean_tokens") {
            Ok(1)
        } else if on("pooling_mode_cls_token") {
            Ok(2)
        } else if on("pooling_mode_lasttoken") {
            Ok(3)
        } else {
            Err(m.unsupported(format!("pooling mode in {dir}/config.json")))
        };
    }
    Ok(1)
}

struct Vocab {
    tokens: Vec<String>,
    types: Vec<i32>,
    special_ids: HashMap<String, u32>,
    lowercase: bool,
    strip_accents: bool,
}

fn wordpiece_vocab(m: &ModelDir) -> Result<Vocab, ConvertError> {
    let tok = m.json("tokenizer.json")?;
    let model = &tok["model"];
    if model["type"].as_str() != Some("WordPiece") {
        return Err(m.unsupported("tokenizer.json is not a WordPiece tokenizer"));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| m.file_err("tokenizer.json", "model.vocab is missing"))?;
    let mut by_id: Vec<Option<&str>> = vec![None; vocab.len()];
    for (token, id) in vocab {
        let id = id.as_u64().map(|i| i as usize).filter(|&i| i < by_id.len());
        match id {
            Some(i) if by_id[i].is_none() => by_id[i] = Some(token),
            _ => {
                return Err(m.file_err(
                    "tokenizer.json",
                    format!("vocab ids are not contiguous at {token:?}"),
                ))
            }
        }
    }
    let mut types = vec![TOKEN_NORMAL; by_id.len()];
    let mut special_ids = HashMap::new();
    for added in tok["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) else {
            continue;
        };
        let id = id as usize;
        if id >= types.len() {
            return Err(m.file_err(
                "tokenizer.json",
                format!("added token {content:?} lies beyond the vocab"),
            ));
        }
        types[id] = if added["special"].as_bool() == Some(true) {
            TOKEN_CONTROL
        } else {
            TOKEN_USER_DEFINED
        };
        special_ids.insert(content.to_string(), id as u32);
    }
    let continuation = model["continuing_subword_prefix"].as_str().unwrap_or("##");
    let tokens: Vec<String> = by_id
        .iter()
        .zip(&types)
        .map(|(t, &ty)| {
            let t = t.unwrap_or_default();
            if ty == TOKEN_CONTROL {
                t.to_string()
            } else if let Some(rest) = t.strip_prefix(continuation) {
                rest.to_string()
            } else {
                format!("\u{2581}{t}")
            }
        })
        .collect();
    let mut seen = HashSet::new();
    if let Some(dup) = tokens.iter().find(|t| !seen.insert(t.as_str())) {
        tracing::warn!(token = %dup, "duplicate token after phantom-space conversion");
    }
    let normalizer = &tok["normalizer"];
    let lowercase = normalizer["lowercase"].as_bool().unwrap_or(true);
    let strip_accents = normalizer["strip_accents"].as_bool().unwrap_or(lowercase);
    for (t, id) in vocab {
        if let Some(id) = id.as_u64() {
            special_ids.entry(t.clone()).or_insert(id as u32);
        }
    }
    Ok(Vocab {
        tokens,
        types,
        special_ids,
        lowercase,
        strip_accents,
    })
}

fn tensor_values(
    m: &ModelDir,
    st: &SafeTensors,
    hf: &str,
) -> Result<(Vec<usize>, Vec<f32>), ConvertError> {
    let view = st
        .tensor(hf)
        .map_err(|e| m.file_err("model.safetensors", format!("tensor {hf}: {e}")))?;
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => return Err(m.unsupported(format!("tensor {hf} has dtype {other:?}"))),
    };
    Ok((view.shape().to_vec(), values))
}

/// Convert the sentence-transformers folder `dir` into the GGUF file `out`.
pub fn convert_sentence_transformer(
    dir: &Path,
    out: &Path,
    options: &ConvertOptions,
) -> Result<ConvertedModel, ConvertError> {
    let m = ModelDir { dir };
    let _span = tracing::info_span!("convert_bert", dir = %dir.display()).entered();
    let cfg = m.json("config.json")?;
    let model_type = cfg["model_type"].as_str().unwrap_or_default();
    if model_type != "bert" {
        return Err(m.unsupported(format!(
            "model_type {model_type:?}; only \"bert\" is supported"
        )));
    }
    if !matches!(cfg["hidden_act"].as_str(), Some("gelu") | None) {
        return Err(m.unsupported(format!("hidden_act {}", cfg["hidden_act"])));
    }
    if cfg["position_embedding_type"]
        .as_str()
        .unwrap_or("absolute")
        != "absolute"
    {
        return Err(m.unsupported("only absolute position embeddings are supported"));
    }
    let get = |k: &str| -> Result<u32, ConvertError> {
        cfg[k]
            .as_u64()
            .map(|v| v as u32)
            .ok_or_else(|| m.file_err("config.json", format!("{k} is missing")))
    };
    let (n_embd, n_layer, n_head, n_ff, n_ctx) = (
        get("hidden_size")?,
        get("num_hidden_layers")?,
        get("num_attention_heads")?,
        get("intermediate_size")?,
        get("max_position_embeddings")?,
    );
    let type_vocab = get("type_vocab_size").unwrap_or(1);
    let eps = cfg["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32;
    let max_tokens = m
        .json("sentence_bert_config.json")
        .ok()
        .and_then(|c| c["max_seq_length"].as_u64())
        .map(|v| v as usize)
        .unwrap_or(n_ctx as usize)
        .min(n_ctx as usize);
    let weights_path = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights_path).map_err(|e| m.file_err("model.safetensors", e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| m.file_err("model.safetensors", e))?;
    let classifier = st
        .names()
        .iter()
        .any(|n| n.strip_prefix("bert.").unwrap_or(n) == "classifier.weight");
    if classifier && cfg["num_labels"].as_u64().is_some_and(|n| n != 1) {
        return Err(
            m.unsupported("a classifier with several labels; rerankers have one relevance score")
        );
    }
    // llama.cpp's pooling ids: RANK = 4 runs the classification head on [CLS].
    let pooling = if classifier { 4 } else { pooling_type(&m)? };
    let vocab = wordpiece_vocab(&m)?;
    let specials = m
        .json("special_tokens_map.json")
        .or_else(|_| m.json("tokenizer_config.json"))
        .unwrap_or(Json::Null);
    let special_id = |key: &str, default: &str| -> Option<u32> {
        let v = &specials[key];
        let content = v
            .as_str()
            .or_else(|| v["content"].as_str())
            .unwrap_or(default);
        vocab.special_ids.get(content).copied()
    };

    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "embedding-model".into());
    let arch = "bert";
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::Str(arch.into())),
        ("general.name".into(), Value::Str(name.clone())),
        (
            "general.file_type".into(),
            Value::U32(u32::from(options.f16)),
        ),
        (format!("{arch}.context_length"), Value::U32(n_ctx)),
        (format!("{arch}.embedding_length"), Value::U32(n_embd)),
        (format!("{arch}.feed_forward_length"), Value::U32(n_ff)),
        (format!("{arch}.block_count"), Value::U32(n_layer)),
        (format!("{arch}.attention.head_count"), Value::U32(n_head)),
        (
            format!("{arch}.attention.layer_norm_epsilon"),
            Value::F32(eps),
        ),
        (format!("{arch}.attention.causal"), Value::Bool(false)),
        (format!("{arch}.pooling_type"), Value::U32(pooling)),
        ("twin.max_tokens".into(), Value::U32(max_tokens as u32)),
        ("tokenizer.ggml.model".into(), Value::Str("bert".into())),
        ("tokenizer.ggml.pre".into(), Value::Str("default".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::StrArray(vocab.tokens.clone()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::I32Array(vocab.types.clone()),
        ),
        (
            "tokenizer.ggml.token_type_count".into(),
            Value::U32(type_vocab),
        ),
        (
            "tokenizer.ggml.normalizer.lowercase".into(),
            Value::Bool(vocab.lowercase),
        ),
        (
            "tokenizer.ggml.normalizer.strip_accents".into(),
            Value::Bool(vocab.strip_accents),
        ),
    ];
    for (key, default, gguf_key) in [
        ("unk_token", "[UNK]", "tokenizer.ggml.unknown_token_id"),
        ("sep_token", "[SEP]", "tokenizer.ggml.seperator_token_id"), // llama.cpp's spelling
        ("pad_token", "[PAD]", "tokenizer.ggml.padding_token_id"),
        ("cls_token", "[CLS]", "tokenizer.ggml.cls_token_id"),
        ("mask_token", "[MASK]", "tokenizer.ggml.mask_token_id"),
        ("cls_token", "[CLS]", "tokenizer.ggml.bos_token_id"),
    ] {
        if let Some(id) = special_id(key, default) {
            meta.push((gguf_key.into(), Value::U32(id)));
        }
    }

    let mut names: Vec<&str> = st.names().into_iter().collect();
    names.sort_unstable();
    let mut tensors = Vec::new();
    for hf in names {
        let Some(gname) = gguf_tensor_name(hf, classifier) else {
            tracing::debug!(tensor = hf, "skipped: llama.cpp does not use it");
            continue;
        };
        let (shape, values) = tensor_values(&m, &st, hf)?;
        // As upstream: vectors, position and token-type embeddings stay F32.
        let keep_f32 = shape.len() < 2
            || gname.starts_with("position_embd")
            || gname.starts_with("token_types");
        let ty = if options.f16 && !keep_f32 {
            TensorType::F16
        } else {
            TensorType::F32
        };
        tensors.push(Tensor::from_f32(gname, &shape, &values, ty));
    }
    let head: &[&str] = if classifier {
        &["cls", "cls.output"]
    } else {
        &[]
    };
    let mut required: Vec<String> = ["token_embd", "position_embd", "token_embd_norm"]
        .iter()
        .chain(head)
        .map(|t| format!("{t}.weight"))
        .collect();
    for b in 0..n_layer {
        for part in [
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "attn_output_norm",
            "ffn_up",
            "ffn_down",
            "layer_output_norm",
        ] {
            required.push(format!("blk.{b}.{part}.weight"));
        }
    }
    if let Some(missing) = required
        .iter()
        .find(|r| !tensors.iter().any(|t| &t.name == *r))
    {
        return Err(m.file_err(
            "model.safetensors",
            format!("required tensor {missing} is missing"),
        ));
    }
    gguf::write(out, &meta, &tensors)?;
    Ok(ConvertedModel {
        path: out.to_path_buf(),
        name,
        dim: n_embd as usize,
        max_tokens,
        n_tensors: tensors.len(),
        reranker: classifier,
    })
}
