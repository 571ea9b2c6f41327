//! The llama-family forward pass in candle, on weights dequantized from the user's own GGUF,
//! with LoRA on chosen projections. Qwen2 and Qwen3 are the same decoder with three
//! differences, each a field of [`LlamaShape`]: biases on the Q/K/V projections (Qwen2), an
//! RMSNorm on every query and key head before RoPE (Qwen3), and RoPE over the two halves of a
//! head (both; llama.cpp's `LLAMA_ROPE_TYPE_NEOX`).
//!
//! The weights come straight from the GGUF, so they are in llama.cpp's layout: for `llama`, Q
//! and K rows are already permuted by llama.cpp's converter, which is why RoPE there rotates
//! adjacent pairs (2i, 2i+1) like llama.cpp's `LLAMA_ROPE_TYPE_NORM`, and why the trained
//! adapter needs no permutation before llama.cpp applies it (../shared/research/training.md).
//! Qwen GGUFs keep Hugging Face's layout, hence the half-split rotation.
//!
//! candle-nn's fused `rms_norm`, `softmax_last_dim` and rope kernels have no backward pass and
//! would silently stop every gradient, so RMSNorm, RoPE, SwiGLU, attention and the loss come
//! from [`super::fused`] (kernels with backward passes on the CPU). A projection with
//! an adapter is one [`LoraMatmul`] node; one without goes through [`FrozenMatmul`]. Both
//! return gradients only for what learns or carries learning: never for the frozen weight,
//! which candle's matmul would also compute.

use super::fused::{attention, cross_entropy, rms_norm, rope, swiglu, AttentionSpan, RopeStyle};
use super::TrainError;
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The projections a LoRA adapter can target, by their GGUF tensor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Attention query (`attn_q`).
    AttnQ,
    /// Attention key (`attn_k`).
    AttnK,
    /// Attention value (`attn_v`).
    AttnV,
    /// Attention output (`attn_output`).
    AttnOutput,
    /// MLP gate (`ffn_gate`).
    FfnGate,
    /// MLP up (`ffn_up`).
    FfnUp,
    /// MLP down (`ffn_down`).
    FfnDown,
}

impl Target {
    /// Every target, in layer order.
    pub const ALL: [Target; 7] = [
        Self::AttnQ,
        Self::AttnK,
        Self::AttnV,
        Self::AttnOutput,
        Self::FfnGate,
        Self::FfnUp,
        Self::FfnDown,
    ];

    /// The GGUF tensor name stem (`blk.N.<stem>.weight`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::AttnQ => "attn_q",
            Self::AttnK => "attn_k",
            Self::AttnV => "attn_v",
            Self::AttnOutput => "attn_output",
            Self::FfnGate => "ffn_gate",
            Self::FfnUp => "ffn_up",
            Self::FfnDown => "ffn_down",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let short = s
            .trim()
            .trim_start_matches("attn_")
            .trim_start_matches("ffn_");
        Ok(match short {
            "q" => Self::AttnQ,
            "k" => Self::AttnK,
            "v" => Self::AttnV,
            "o" | "output" => Self::AttnOutput,
            "gate" => Self::FfnGate,
            "up" => Self::FfnUp,
            "down" => Self::FfnDown,
            _ => {
                return Err(format!(
                    "unknown LoRA target {s:?} (q, k, v, o, gate, up, down)"
                ))
            }
        })
    }
}

/// Rank, strength and placement of a LoRA adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank r of the update B·A.
    pub rank: usize,
    /// The update is scaled by alpha / r.
    pub alpha: f32,
    /// Projections that get an adapter.
    pub targets: Vec<Target>,
    /// Seed for A's initial values (runs are reproducible).
    pub seed: u64,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, attention plus MLP.
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            targets: Target::ALL.to_vec(),
            seed: 0x2545_F491_4F6C_DD1D,
        }
    }
}

/// Shape of a llama-family model, read from its GGUF metadata.
#[derive(Clone, Debug, PartialEq, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct LlamaShape {
    /// `general.architecture`.
    pub architecture: String,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub embedding: usize,
    /// MLP hidden size.
    pub feed_forward: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency.
    pub rope_base: f64,
    /// Whether the output head is the token embedding matrix.
    pub tied_embeddings: bool,
    /// RoPE rotates (i, i + head_dim/2) instead of adjacent pairs (Qwen: llama.cpp's NEOX).
    pub rope_halves: bool,
    /// Q, K and V projections carry biases (Qwen2).
    pub qkv_bias: bool,
    /// Every query and key head is RMS-normalised before RoPE (Qwen3).
    pub qk_norm: bool,
}

impl LlamaShape {
    /// Parameters of the base model.
    pub fn parameters(&self) -> u64 {
        let (d, f, kv) = (
            self.embedding as u64,
            self.feed_forward as u64,
            (self.kv_heads * self.head_dim) as u64,
        );
        let attn = (self.heads * self.head_dim) as u64;
        let extras = if self.qkv_bias { attn + 2 * kv } else { 0 }
            + if self.qk_norm {
                2 * self.head_dim as u64
            } else {
                0
            };
        let per_layer = 2 * d * attn + 2 * d * kv + 3 * d * f + 2 * d + extras;
        let head = if self.tied_embeddings {
            0
        } else {
            self.vocab as u64 * d
        };
        self.layers as u64 * per_layer + self.vocab as u64 * d + head + d
    }

    /// (out, in) of a target projection.
    pub fn target_dims(&self, target: Target) -> (usize, usize) {
        let (d, f, kv) = (
            self.embedding,
            self.feed_forward,
            self.kv_heads * self.head_dim,
        );
        match target {
            Target::AttnQ => (self.heads * self.head_dim, d),
            Target::AttnK | Target::AttnV => (kv, d),
            Target::AttnOutput => (d, self.heads * self.head_dim),
            Target::FfnGate | Target::FfnUp => (f, d),
            Target::FfnDown => (d, f),
        }
    }

    /// Trainable parameters of a LoRA adapter with `config` on this model.
    pub fn lora_parameters(&self, config: &LoraConfig) -> u64 {
        let per_layer: usize = config
            .targets
            .iter()
            .map(|&t| {
                let (out, inp) = self.target_dims(t);
                config.rank * (out + inp)
            })
            .sum();
        (per_layer * self.layers) as u64
    }
}

use crate::models::TRAINABLE_ARCHITECTURES as SUPPORTED_ARCHITECTURES;

/// One LoRA pair on a frozen projection.
pub(crate) struct Lora {
    /// (r, in), small random values.
    pub a: Var,
    /// (out, r), zeros: the adapter starts as the identity.
    pub b: Var,
    scale: f64,
}

struct Linear {
    /// GGUF tensor name, e.g. `blk.0.attn_q.weight`.
    name: String,
    /// (out, in), frozen.
    weight: Tensor,
    lora: Option<Lora>,
}

/// Whether a forward pass records the graph for backpropagation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Through the LoRA variables, so `backward` reaches them.
    Train,
    /// With detached adapter weights: no graph is kept, memory stays flat.
    Eval,
    /// The base model alone.
    Base,
}

impl Linear {
    fn forward(&self, x: &Tensor, pass: Pass) -> candle_core::Result<Tensor> {
        match (&self.lora, pass) {
            (Some(l), Pass::Train | Pass::Eval) if x.device().is_cpu() => {
                let (a, b) = match pass {
                    Pass::Train => (l.a.as_tensor().clone(), l.b.as_tensor().clone()),
                    _ => (l.a.as_tensor().detach(), l.b.as_tensor().detach()),
                };
                return x.contiguous()?.apply_op3(
                    &a,
                    &b,
                    LoraMatmul {
                        weight: self.weight.clone(),
                        scale: l.scale,
                    },
                );
            }
            _ => {}
        }
        let y = frozen_matmul(x, &self.weight)?;
        match (&self.lora, pass) {
            (Some(l), Pass::Train) => {
                let d = x
                    .matmul(&l.a.as_tensor().t()?)?
                    .matmul(&l.b.as_tensor().t()?)?;
                y + (d * l.scale)?
            }
            (Some(l), Pass::Eval) => {
                let (a, b) = (l.a.as_tensor().detach(), l.b.as_tensor().detach());
                let d = x.matmul(&a.t()?)?.matmul(&b.t()?)?;
                y + (d * l.scale)?
            }
            _ => Ok(y),
        }
    }
}

/// `x · Wᵀ` for a frozen `W`, whose backward pass computes only the input's gradient.
struct FrozenMatmul {
    weight: Tensor,
}

impl candle_core::CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        // The backend's matmul reads the input where it lies and returns fresh storage: going
        // through `Tensor` here would copy the input in and the (often large) output out.
        let (m, k) = layout.shape().dims2()?;
        let weight_t = self.weight.t()?;
        let (n, wk) = self.weight.dims2()?;
        if wk != k {
            return Err(candle_core::Error::Msg(format!(
                "frozen-matmul: input has {k} columns, weight expects {wk}"
            )));
        }
        let (stored, weight_layout) = weight_t.storage_and_layout();
        match &*stored {
            candle_core::Storage::Cpu(weight) => Ok((
                storage.matmul(weight, (1, m, n, k), layout, weight_layout)?,
                candle_core::Shape::from((m, n)),
            )),
            _ => Err(candle_core::Error::Msg(
                "frozen-matmul: expected CPU storage".into(),
            )),
        }
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.matmul(&self.weight)?))
    }
}

/// `x · Wᵀ + scale · (x · Aᵀ) · Bᵀ` for a frozen `W` and LoRA pair (A, B), as one graph node
/// whose backward pass computes the input's and the pair's gradients directly. Composed from
/// basic ops, the same projection leaves five nodes, and candle's backward pass zero-fills and
/// adds a full-size gradient for each of them.
struct LoraMatmul {
    weight: Tensor,
    scale: f64,
}

impl candle_core::CustomOp3 for LoraMatmul {
    fn name(&self) -> &'static str {
        "lora-matmul"
    }

    fn cpu_fwd(
        &self,
        xs: &candle_core::CpuStorage,
        xl: &candle_core::Layout,
        a_s: &candle_core::CpuStorage,
        al: &candle_core::Layout,
        bs: &candle_core::CpuStorage,
        bl: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        let (m, k) = xl.shape().dims2()?;
        let (r, ak) = al.shape().dims2()?;
        let (n, br) = bl.shape().dims2()?;
        if ak != k || br != r {
            return Err(candle_core::Error::Msg(format!(
                "lora-matmul: input ({m}, {k}), A ({r}, {ak}), B ({n}, {br}) do not fit"
            )));
        }
        let base = FrozenMatmul {
            weight: self.weight.clone(),
        };
        let (y, shape) = candle_core::CustomOp1::cpu_fwd(&base, xs, xl)?;
        let xa = xs.matmul(a_s, (1, m, r, k), xl, &al.transpose(0, 1)?)?;
        let d = xa.matmul(
            bs,
            (1, m, n, r),
            &candle_core::Layout::contiguous((m, r)),
            &bl.transpose(0, 1)?,
        )?;
        match (y, d) {
            (candle_core::CpuStorage::F32(mut y), candle_core::CpuStorage::F32(d)) => {
                let scale = self.scale as f32;
                use rayon::prelude::*;
                y.par_iter_mut()
                    .zip(d.par_iter())
                    .for_each(|(y, d)| *y += scale * d);
                Ok((candle_core::CpuStorage::F32(y), shape))
            }
            _ => Err(candle_core::Error::Msg("lora-matmul: expected f32".into())),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The first layer reads the embeddings, which nothing upstream learns from.
        let wants_dx = x.track_op();
        let (x, a, b, g) = (x.detach(), a.detach(), b.detach(), grad.detach());
        let gb = g.matmul(&b)?;
        let dx = if wants_dx {
            Some((g.matmul(&self.weight)? + (&gb * self.scale)?.matmul(&a)?)?)
        } else {
            None
        };
        let xa = x.matmul(&a.t()?)?;
        let db = (g.t()?.matmul(&xa)? * self.scale)?;
        let da = (gb.t()?.matmul(&x)? * self.scale)?;
        Ok((dx, Some(da), Some(db)))
    }
}

fn frozen_matmul(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(FrozenMatmul {
            weight: weight.clone(),
        })
    } else {
        // GPU builds use candle's own matmul (the frozen-weight gradient is wasted work there,
        // but correct).
        x.matmul(&weight.t()?)
    }
}

struct Layer {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    /// Q, K, V biases (Qwen2).
    qkv_bias: Option<[Tensor; 3]>,
    /// Per-head query and key RMSNorm weights (Qwen3).
    qk_norm: Option<[Tensor; 2]>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Layer {
    fn linears(&self) -> [&Linear; 7] {
        [
            &self.q, &self.k, &self.v, &self.o, &self.gate, &self.up, &self.down,
        ]
    }
}

/// A packed training sequence: several examples back to back, each attending only to itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Input token ids.
    pub tokens: Vec<u32>,
    /// RoPE position of each token (restarts at 0 for every example).
    pub positions: Vec<u32>,
    /// Example index of each token; attention never crosses examples.
    pub segments: Vec<u32>,
    /// (input index, expected next token): the positions the loss is computed on.
    pub targets: Vec<(u32, u32)>,
    /// (example segment, prefix segment): the example's tokens also attend to every token of
    /// the prefix segment, a prompt beginning it shares with the other examples of the group
    /// (see [`Sequence::push_shared`]).
    #[serde(default)]
    pub shared: Vec<(u32, u32)>,
}

impl Sequence {
    /// Append one example; only predictions of `tokens[prompt_len..]` count towards the loss.
    pub fn push_example(&mut self, tokens: &[u32], prompt_len: usize) {
        if tokens.len() < 2 {
            return;
        }
        let segment = self.segments.last().map_or(0, |s| s + 1);
        let base = self.tokens.len();
        let inputs = &tokens[..tokens.len() - 1];
        for (i, &t) in inputs.iter().enumerate() {
            self.tokens.push(t);
            self.positions.push(i as u32);
            self.segments.push(segment);
            if i + 1 >= prompt_len.max(1) {
                self.targets.push(((base + i) as u32, tokens[i + 1]));
            }
        }
    }

    /// Append examples whose token lists all begin with the same `prefix_len` tokens (for
    /// instance the system prompt and the format's request line). The prefix is stored once;
    /// each example continues from it, attending to it and to itself, at the positions it would
    /// have alone. The loss and its gradients are those of the examples packed one by one,
    /// while the prefix's forward and backward passes run once instead of once per example.
    /// `prefix_len` is cut to the tokens the examples really have in common, and to leave every
    /// example's first reply prediction outside the prefix.
    pub fn push_shared(&mut self, examples: &[(&[u32], usize)], prefix_len: usize) {
        let Some(((first, _), rest)) = examples.split_first() else {
            return;
        };
        let prefix_len = examples.iter().fold(prefix_len, |p, (tokens, prompt_len)| {
            let common = first
                .iter()
                .zip(*tokens)
                .take_while(|(a, b)| a == b)
                .count();
            p.min(common)
                .min((*prompt_len).max(1) - 1)
                .min(tokens.len().saturating_sub(2))
        });
        if rest.is_empty() || prefix_len == 0 {
            for (tokens, prompt_len) in examples {
                self.push_example(tokens, *prompt_len);
            }
            return;
        }
        let prefix_segment = self.segments.last().map_or(0, |s| s + 1);
        for (i, &t) in first[..prefix_len].iter().enumerate() {
            self.tokens.push(t);
            self.positions.push(i as u32);
            self.segments.push(prefix_segment);
        }
        for (tokens, prompt_len) in examples {
            let segment = self.segments.last().map_or(0, |s| s + 1);
            self.shared.push((segment, prefix_segment));
            for i in prefix_len..tokens.len() - 1 {
                if i + 1 >= *prompt_len {
                    self.targets.push((self.tokens.len() as u32, tokens[i + 1]));
                }
                self.tokens.push(tokens[i]);
                self.positions.push(i as u32);
                self.segments.push(segment);
            }
        }
    }

    /// Input tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the sequence holds nothing.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// A llama-family model in candle with LoRA adapters on its projections.
pub struct LoraModel {
    shape: LlamaShape,
    path: PathBuf,
    device: Device,
    embeddings: Tensor,
    output: Tensor,
    output_norm: Tensor,
    layers: Vec<Layer>,
    /// (max positions, head_dim / 2) angle tables.
    cos: Tensor,
    sin: Tensor,
    lora: LoraConfig,
}

impl std::fmt::Debug for LoraModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoraModel")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .finish()
    }
}

fn metadata<'a>(
    content: &'a gguf_file::Content,
    path: &Path,
    key: &str,
) -> Result<&'a gguf_file::Value, TrainError> {
    content.metadata.get(key).ok_or_else(|| TrainError::Model {
        path: path.to_path_buf(),
        reason: format!("missing metadata {key}"),
    })
}

fn meta_usize(content: &gguf_file::Content, path: &Path, key: &str) -> Result<usize, TrainError> {
    let value = metadata(content, path, key)?;
    value
        .to_u32()
        .map(|v| v as usize)
        .or_else(|_| value.to_u64().map(|v| v as usize))
        .map_err(|e| TrainError::Model {
            path: path.to_path_buf(),
            reason: format!("{key}: {e}"),
        })
}

/// Read the shape of the GGUF model at `path`, refusing architectures the trainer lacks.
pub fn read_shape(path: &Path) -> Result<LlamaShape, TrainError> {
    let mut file = std::fs::File::open(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let content = gguf_file::Content::read(&mut file).map_err(|e| TrainError::Model {
        path: path.to_path_buf(),
        reason: format!("not a readable GGUF model: {e}"),
    })?;
    shape_of(&content, path)
}

fn shape_of(content: &gguf_file::Content, path: &Path) -> Result<LlamaShape, TrainError> {
    let arch = metadata(content, path, "general.architecture")?
        .to_string()
        .cloned()
        .map_err(|e| TrainError::Model {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(TrainError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            architecture: arch,
        });
    }
    let key = |k: &str| format!("{arch}.{k}");
    let layers = meta_usize(content, path, &key("block_count"))?;
    let embedding = meta_usize(content, path, &key("embedding_length"))?;
    let feed_forward = meta_usize(content, path, &key("feed_forward_length"))?;
    let heads = meta_usize(content, path, &key("attention.head_count"))?;
    let kv_heads = meta_usize(content, path, &key("attention.head_count_kv")).unwrap_or(heads);
    let rms_eps = metadata(content, path, &key("attention.layer_norm_rms_epsilon"))?
        .to_f32()
        .map_err(|e| TrainError::Model {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })? as f64;
    let rope_base = content
        .metadata
        .get(&key("rope.freq_base"))
        .and_then(|v| v.to_f32().ok())
        .unwrap_or(10_000.0) as f64;
    // Qwen3 sets the head size explicitly (it need not be embedding / heads).
    let head_dim =
        meta_usize(content, path, &key("attention.key_length")).unwrap_or(embedding / heads.max(1));
    if let Ok(rope_dims) = meta_usize(content, path, &key("rope.dimension_count")) {
        if rope_dims != head_dim {
            return Err(TrainError::Model {
                path: path.to_path_buf(),
                reason: format!(
                    "partial rotary embeddings ({rope_dims} of {head_dim} dimensions) are not supported for training"
                ),
            });
        }
    }
    // candle lists dimensions row-major: (n_vocab, n_embd).
    let vocab = content
        .tensor_infos
        .get("token_embd.weight")
        .and_then(|t| t.shape.dims().first().copied())
        .unwrap_or(0);
    Ok(LlamaShape {
        layers,
        embedding,
        feed_forward,
        heads,
        kv_heads,
        head_dim,
        vocab,
        rms_eps,
        rope_base,
        tied_embeddings: !content.tensor_infos.contains_key("output.weight"),
        rope_halves: arch != "llama",
        qkv_bias: content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        qk_norm: content
            .tensor_infos
            .contains_key("blk.0.attn_q_norm.weight"),
        architecture: arch,
    })
}

/// The device training runs on: the GPU on `cuda`/`metal` builds when one is present, else CPU.
pub fn training_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return d;
    }
    Device::Cpu
}

/// xorshift64*: reproducible initial values (candle's CPU RNG cannot be seeded).
struct Rng(u64);

impl Rng {
    fn next_unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32) / (1u64 << 24) as f32
    }
}

/// Positions the RoPE tables cover; longer sequences are refused.
const MAX_POSITIONS: usize = 4096;

impl LoraModel {
    /// Load the GGUF model at `path`, dequantized to f32, with fresh LoRA adapters per `lora`.
    pub fn load(path: &Path, lora: &LoraConfig, device: &Device) -> Result<Self, TrainError> {
        let _span = tracing::info_span!("load_training_model", path = %path.display()).entered();
        let io = |source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| TrainError::Model {
            path: path.to_path_buf(),
            reason: format!("not a readable GGUF model: {e}"),
        })?;
        let shape = shape_of(&content, path)?;
        let mut get = |name: &str| -> Result<Tensor, TrainError> {
            let qt = content
                .tensor(&mut file, name, device)
                .map_err(|e| TrainError::Model {
                    path: path.to_path_buf(),
                    reason: format!("tensor {name}: {e}"),
                })?;
            Ok(qt.dequantize(device)?)
        };
        let embeddings = get("token_embd.weight")?;
        let output = if shape.tied_embeddings {
            embeddings.clone()
        } else {
            get("output.weight")?
        };
        let output_norm = get("output_norm.weight")?;
        let freq_factors = if content.tensor_infos.contains_key("rope_freqs.weight") {
            Some(get("rope_freqs.weight")?.to_vec1::<f32>()?)
        } else {
            None
        };
        let mut rng = Rng(lora.seed | 1);
        let mut layers = Vec::with_capacity(shape.layers);
        for i in 0..shape.layers {
            let mut linear = |target: Target| -> Result<Linear, TrainError> {
                let name = format!("blk.{i}.{}.weight", target.gguf_name());
                let weight = get(&name)?;
                let adapter = if lora.targets.contains(&target) {
                    let (out, inp) = weight.dims2()?;
                    // PEFT's default: A uniform in ±1/√in, B zero, so training starts at the base model.
                    let bound = 1.0 / (inp as f32).sqrt();
                    let values: Vec<f32> = (0..lora.rank * inp)
                        .map(|_| (rng.next_unit() * 2.0 - 1.0) * bound)
                        .collect();
                    Some(Lora {
                        a: Var::from_tensor(&Tensor::from_vec(values, (lora.rank, inp), device)?)?,
                        b: Var::zeros((out, lora.rank), DType::F32, device)?,
                        scale: f64::from(lora.alpha) / lora.rank as f64,
                    })
                } else {
                    None
                };
                Ok(Linear {
                    name,
                    weight,
                    lora: adapter,
                })
            };
            let q = linear(Target::AttnQ)?;
            let k = linear(Target::AttnK)?;
            let v = linear(Target::AttnV)?;
            let o = linear(Target::AttnOutput)?;
            let gate = linear(Target::FfnGate)?;
            let up = linear(Target::FfnUp)?;
            let down = linear(Target::FfnDown)?;
            let qkv_bias = if shape.qkv_bias {
                Some([
                    get(&format!("blk.{i}.attn_q.bias"))?,
                    get(&format!("blk.{i}.attn_k.bias"))?,
                    get(&format!("blk.{i}.attn_v.bias"))?,
                ])
            } else {
                None
            };
            let qk_norm = if shape.qk_norm {
                Some([
                    get(&format!("blk.{i}.attn_q_norm.weight"))?,
                    get(&format!("blk.{i}.attn_k_norm.weight"))?,
                ])
            } else {
                None
            };
            layers.push(Layer {
                attn_norm: get(&format!("blk.{i}.attn_norm.weight"))?,
                ffn_norm: get(&format!("blk.{i}.ffn_norm.weight"))?,
                qkv_bias,
                qk_norm,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
            });
        }
        let half = shape.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| {
                let f = 1.0 / shape.rope_base.powf(2.0 * i as f64 / shape.head_dim as f64);
                let factor = freq_factors
                    .as_ref()
                    .and_then(|ff| ff.get(i))
                    .copied()
                    .unwrap_or(1.0) as f64;
                (f / factor) as f32
            })
            .collect();
        let inv = Tensor::new(inv.as_slice(), device)?.reshape((1, half))?;
        let positions = Tensor::arange(0u32, MAX_POSITIONS as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((MAX_POSITIONS, 1))?;
        let angles = positions.broadcast_mul(&inv)?;
        Ok(Self {
            shape,
            path: path.to_path_buf(),
            device: device.clone(),
            embeddings,
            output,
            output_norm,
            layers,
            cos: angles.cos()?,
            sin: angles.sin()?,
            lora: lora.clone(),
        })
    }

    /// The model's shape.
    pub fn shape(&self) -> &LlamaShape {
        &self.shape
    }

    /// The adapter's configuration.
    pub fn lora_config(&self) -> &LoraConfig {
        &self.lora
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every LoRA tensor with its GGUF name (`<base tensor>.lora_a` / `.lora_b`).
    pub fn lora_vars(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .flat_map(|l| l.linears())
            .filter_map(|l| l.lora.as_ref().map(|a| (l.name.as_str(), a)))
            .flat_map(|(name, a)| {
                [
                    (format!("{name}.lora_a"), a.a.clone()),
                    (format!("{name}.lora_b"), a.b.clone()),
                ]
            })
            .collect()
    }

    /// Final hidden states of `sequence` (after the output norm), one row per input token.
    fn hidden(&self, sequence: &Sequence, pass: Pass) -> Result<Tensor, TrainError> {
        let t = sequence.len();
        if t == 0 {
            return Err(TrainError::Data(
                "an empty sequence cannot be evaluated".into(),
            ));
        }
        if sequence
            .positions
            .iter()
            .any(|&p| p as usize >= MAX_POSITIONS)
        {
            return Err(TrainError::Data(format!(
                "an example is longer than {MAX_POSITIONS} tokens"
            )));
        }
        let dev = &self.device;
        let (nh, nkv, hd) = (self.shape.heads, self.shape.kv_heads, self.shape.head_dim);
        let ids = Tensor::new(sequence.tokens.as_slice(), dev)?;
        let mut x = self.embeddings.index_select(&ids, 0)?;
        let pos = Tensor::new(sequence.positions.as_slice(), dev)?;
        let cos = self.cos.index_select(&pos, 0)?;
        let sin = self.sin.index_select(&pos, 0)?;
        let rope_style = if self.shape.rope_halves {
            RopeStyle::Halves
        } else {
            RopeStyle::Pairs
        };
        // Attention never crosses examples, so it runs per example (contiguous runs of one
        // segment id): the cost is Σ len² instead of t², and each causal mask is small.
        let spans = attention_spans(sequence);
        let scale = 1.0 / (hd as f64).sqrt();
        let eps = self.shape.rms_eps;
        for l in &self.layers {
            let h = rms_norm(&x, &l.attn_norm, eps)?;
            let (mut q, mut k, mut v) = (
                l.q.forward(&h, pass)?,
                l.k.forward(&h, pass)?,
                l.v.forward(&h, pass)?,
            );
            if let Some([bq, bk, bv]) = &l.qkv_bias {
                q = q.broadcast_add(bq)?;
                k = k.broadcast_add(bk)?;
                v = v.broadcast_add(bv)?;
            }
            let (mut q, mut k) = (q.reshape((t, nh, hd))?, k.reshape((t, nkv, hd))?);
            if let Some([wq, wk]) = &l.qk_norm {
                q = rms_norm(&q, wq, eps)?;
                k = rms_norm(&k, wk, eps)?;
            }
            let q = rope(&q, &cos, &sin, rope_style)?;
            let k = rope(&k, &cos, &sin, rope_style)?;
            let y = attention(&q, &k, &v.reshape((t, nkv, hd))?, &spans, scale)?;
            x = (x + l.o.forward(&y, pass)?)?;
            let h = rms_norm(&x, &l.ffn_norm, eps)?;
            let g = l.gate.forward(&h, pass)?;
            let u = l.up.forward(&h, pass)?;
            x = (x + l.down.forward(&swiglu(&g, &u)?, pass)?)?;
        }
        Ok(rms_norm(&x, &self.output_norm, eps)?)
    }

    /// Mean cross-entropy over the sequence's targets, and how many there were.
    pub fn loss(&self, sequence: &Sequence, pass: Pass) -> Result<(Tensor, usize), TrainError> {
        if sequence.targets.is_empty() {
            return Err(TrainError::Data(
                "a sequence has no reply tokens to learn".into(),
            ));
        }
        let hidden = self.hidden(sequence, pass)?;
        let rows: Vec<u32> = sequence.targets.iter().map(|&(i, _)| i).collect();
        let expected: Vec<u32> = sequence.targets.iter().map(|&(_, t)| t).collect();
        // The vocabulary head is the largest matmul; only reply positions need it.
        let hidden = hidden.index_select(&Tensor::new(rows.as_slice(), &self.device)?, 0)?;
        let logits = frozen_matmul(&hidden, &self.output)?;
        Ok((cross_entropy(&logits, &expected)?, rows.len()))
    }

    /// Logits at every position of `tokens` (one example), for comparison with llama.cpp.
    pub fn logits(&self, tokens: &[u32], pass: Pass) -> Result<Vec<Vec<f32>>, TrainError> {
        let sequence = Sequence {
            tokens: tokens.to_vec(),
            positions: (0..tokens.len() as u32).collect(),
            segments: vec![0; tokens.len()],
            targets: Vec::new(),
            shared: Vec::new(),
        };
        let hidden = self.hidden(&sequence, pass)?;
        Ok(frozen_matmul(&hidden, &self.output)?.to_vec2::<f32>()?)
    }
}

/// The spans attention runs over: each run of one segment id, with its shared prefix if any.
fn attention_spans(sequence: &Sequence) -> Vec<AttentionSpan> {
    let runs = segment_spans(&sequence.segments);
    let run_of = |segment: u32| {
        runs.iter()
            .copied()
            .find(|&(start, _)| sequence.segments[start] == segment)
    };
    runs.iter()
        .map(|&(start, len)| {
            let segment = sequence.segments[start];
            let prefix = sequence
                .shared
                .iter()
                .find(|(s, _)| *s == segment)
                .and_then(|&(_, p)| run_of(p));
            AttentionSpan { start, len, prefix }
        })
        .collect()
}

/// (start, length) of each run of equal segment ids: the examples of a packed sequence.
fn segment_spans(segments: &[u32]) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        match spans.last_mut() {
            Some((start, len)) if segments[*start] == *s => *len += 1,
            _ => spans.push((i, 1)),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::super::fused::relative_difference;
    use super::*;

    #[test]
    fn the_fused_lora_projection_matches_its_basic_ops_in_values_and_gradients() {
        let dev = Device::Cpu;
        let (m, k, n, r, scale) = (6, 10, 7, 3, 2.5);
        let weight = Tensor::randn(0f32, 1., (n, k), &dev).unwrap();
        let x = Var::randn(0f32, 1., (m, k), &dev).unwrap();
        let a = Var::randn(0f32, 1., (r, k), &dev).unwrap();
        let b = Var::randn(0f32, 1., (n, r), &dev).unwrap();
        let upstream = Tensor::randn(0f32, 1., (m, n), &dev).unwrap();
        // The input must come out of an op for its gradient to be asked for, as in a layer.
        let input = (x.as_tensor() * 1.0).unwrap();
        let fused = input
            .apply_op3(
                a.as_tensor(),
                b.as_tensor(),
                LoraMatmul {
                    weight: weight.clone(),
                    scale,
                },
            )
            .unwrap();
        let basic = (input.matmul(&weight.t().unwrap()).unwrap()
            + (input
                .matmul(&a.as_tensor().t().unwrap())
                .unwrap()
                .matmul(&b.as_tensor().t().unwrap())
                .unwrap()
                * scale)
                .unwrap())
        .unwrap();
        assert!(relative_difference(&fused, &basic) < 1e-5);
        let loss = |y: &Tensor| (y * &upstream).unwrap().sum_all().unwrap();
        let (gf, gb) = (
            loss(&fused).backward().unwrap(),
            loss(&basic).backward().unwrap(),
        );
        for (name, v) in [("x", &x), ("A", &a), ("B", &b)] {
            let (f, b) = (
                gf.get(v.as_tensor()).unwrap(),
                gb.get(v.as_tensor()).unwrap(),
            );
            assert!(
                relative_difference(f, b) < 1e-5,
                "gradient of {name} differs"
            );
        }
    }
}
