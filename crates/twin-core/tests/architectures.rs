//! The trainer's Qwen2 and Qwen3 forward passes agree with llama.cpp's, with and without a
//! LoRA adapter, and the adapter it exports loads into llama.cpp next to the base model.
//!
//! No Qwen model can be fetched offline, so the test writes one: SmolLM2-135M's weights in a
//! `qwen2` (or `qwen3`) GGUF. Q and K rows go back to Hugging Face's layout (llama.cpp's converter
//! permutes them for `llama` only, since Qwen uses the half-split RoPE), and the parts Qwen adds
//! get seeded values: Q/K/V biases (Qwen2), per-head query/key RMSNorm weights (Qwen3). Weights
//! are stored as F16 so both runtimes see the same numbers.

mod common;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use twin_core::engine::{ChatModel, ChatModelConfig, ChatTokenizer};
use twin_core::train::export::{write_adapter, AdapterMeta};
use twin_core::train::{LoraConfig, LoraModel, Pass};
use twin_core::CancelToken;

use common::seeded;

fn meta_u32(content: &gguf_file::Content, key: &str) -> usize {
    content.metadata[key].to_u32().unwrap() as usize
}

/// Undo llama.cpp's Q/K row permutation: (heads, hd/2, 2, in) → (heads, 2, hd/2, in).
fn unpermute(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().unwrap();
    w.reshape((heads, out / heads / 2, 2, inp))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((out, inp))
        .unwrap()
}

fn stored(t: &Tensor) -> QTensor {
    // Norms and biases stay F32, as llama.cpp's converter writes them.
    let ty = if t.rank() == 1 {
        GgmlDType::F32
    } else {
        GgmlDType::F16
    };
    QTensor::quantize(t, ty).unwrap()
}

/// SmolLM2's weights as a `arch` (`qwen2` or `qwen3`) GGUF at `out`.
fn qwen_from_smollm2(arch: &str, out: &Path) {
    let src = common::smollm2();
    let mut file = std::fs::File::open(&src).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let heads = meta_u32(&content, "llama.attention.head_count");
    let kv_heads = meta_u32(&content, "llama.attention.head_count_kv");
    let layers = meta_u32(&content, "llama.block_count");
    let head_dim = meta_u32(&content, "llama.embedding_length") / heads;
    let metadata: Vec<(String, gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| match k.as_str() {
            "general.architecture" => (k.clone(), gguf_file::Value::String(arch.into())),
            _ => match k.strip_prefix("llama.") {
                Some(rest) => (format!("{arch}.{rest}"), v.clone()),
                None => (k.clone(), v.clone()),
            },
        })
        .collect();
    let dev = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for name in names {
        let w = content
            .tensor(&mut file, name, &dev)
            .unwrap()
            .dequantize(&dev)
            .unwrap();
        let w = if name.ends_with("attn_q.weight") {
            unpermute(&w, heads)
        } else if name.ends_with("attn_k.weight") {
            unpermute(&w, kv_heads)
        } else {
            w
        };
        tensors.push((name.clone(), stored(&w)));
    }
    for i in 0..layers {
        let seed = 1000 + i as u64;
        let extra: Vec<(String, Vec<f32>)> = if arch == "qwen2" {
            vec![
                (
                    format!("blk.{i}.attn_q.bias"),
                    seeded(heads * head_dim, seed, -0.1, 0.1),
                ),
                (
                    format!("blk.{i}.attn_k.bias"),
                    seeded(kv_heads * head_dim, seed + 1, -0.1, 0.1),
                ),
                (
                    format!("blk.{i}.attn_v.bias"),
                    seeded(kv_heads * head_dim, seed + 2, -0.1, 0.1),
                ),
            ]
        } else {
            vec![
                (
                    format!("blk.{i}.attn_q_norm.weight"),
                    seeded(head_dim, seed, 0.5, 1.5),
                ),
                (
                    format!("blk.{i}.attn_k_norm.weight"),
                    seeded(head_dim, seed + 1, 0.5, 1.5),
                ),
            ]
        };
        for (name, values) in extra {
            let n = values.len();
            tensors.push((name, stored(&Tensor::from_vec(values, n, &dev).unwrap())));
        }
    }
    let meta_refs: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    gguf_file::write(&mut w, &meta_refs, &tensor_refs).unwrap();
}

fn llama_cpp(model: &Path, adapter: Option<PathBuf>) -> ChatModel {
    ChatModel::load(
        model,
        &ChatModelConfig {
            context_tokens: 512,
            adapter,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("llama.cpp loads {}: {e}", model.display()))
}

fn check_architecture(arch: &str) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join(format!("smollm2-as-{arch}.gguf"));
    qwen_from_smollm2(arch, &model);
    let tokenizer = ChatTokenizer::load(&model).unwrap();
    let (tokens, _) = common::example_tokens(&tokenizer);
    let candle = LoraModel::load(&model, &LoraConfig::default(), &Device::Cpu).unwrap();
    assert_eq!(candle.shape().architecture, arch);
    assert_eq!(candle.shape().qkv_bias, arch == "qwen2");
    assert_eq!(candle.shape().qk_norm, arch == "qwen3");

    let base = llama_cpp(&model, None);
    let scored = base.score(&tokens, 1, 0.0, &CancelToken::new()).unwrap();
    let logits = candle.logits(&tokens, Pass::Base).unwrap();
    common::Parity::of(&logits, &tokens, &scored).assert_within_bounds(arch);
    drop(base);

    // A non-trivial adapter (B starts at zero; give it values), exported and served by
    // llama.cpp, must change the model the same way in both runtimes.
    for (i, (_, var)) in candle.lora_vars().iter().enumerate() {
        if var.as_tensor().dims()[0] > LoraConfig::default().rank {
            let n = var.as_tensor().elem_count();
            let values = Tensor::from_vec(
                seeded(n, 77 + i as u64, -0.1, 0.1),
                var.dims(),
                &Device::Cpu,
            )
            .unwrap();
            var.set(&values).unwrap();
        }
    }
    let adapter = dir.path().join("voice.gguf");
    write_adapter(
        &adapter,
        &AdapterMeta {
            name: "voice".into(),
            architecture: arch.into(),
            alpha: LoraConfig::default().alpha,
            base_sha256: "0".repeat(64),
            dataset: "test".into(),
        },
        &candle.lora_vars(),
    )
    .unwrap();
    let served = llama_cpp(&model, Some(adapter));
    let with_adapter = served.score(&tokens, 1, 1.0, &CancelToken::new()).unwrap();
    let logits = candle.logits(&tokens, Pass::Eval).unwrap();
    let parity = common::Parity::of(&logits, &tokens, &with_adapter);
    parity.assert_within_bounds(&format!("{arch} with a LoRA adapter"));
    let moved = with_adapter
        .nll
        .iter()
        .zip(&scored.nll)
        .map(|(a, b)| f64::from((a - b).abs()))
        .sum::<f64>()
        / scored.nll.len() as f64;
    eprintln!("{arch}: the adapter moves per-token NLL by {moved:.3} nats on average");
    assert!(moved > 0.05, "the adapter changes the model ({moved:.4})");
}

#[test]
fn qwen2_forward_and_adapter_agree_with_llama_cpp() {
    check_architecture("qwen2");
}

#[test]
fn qwen3_forward_and_adapter_agree_with_llama_cpp() {
    check_architecture("qwen3");
}

#[test]
fn an_unsupported_architecture_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("phi.gguf");
    let src = common::smollm2();
    let mut file = std::fs::File::open(&src).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let metadata: Vec<(String, gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| match k.as_str() {
            "general.architecture" => (k.clone(), gguf_file::Value::String("phi3".into())),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let meta_refs: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(&model).unwrap());
    gguf_file::write(&mut w, &meta_refs, &[]).unwrap();
    drop(w);
    let err = LoraModel::load(&model, &LoraConfig::default(), &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("phi3") && msg.contains("phi.gguf") && msg.contains("qwen2"),
        "{msg}"
    );
}
