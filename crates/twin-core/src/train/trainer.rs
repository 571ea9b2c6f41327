//! The training loop: packed sequences, AdamW with warm-up and cosine decay, gradient
//! accumulation, held-out evaluation with early stopping, checkpoints with resume, cancellation
//! and progress events; and the plan `twin train --dry-run` prints.
//!
//! A run is identified by its base model, dataset and parameters. Checkpoints hold the LoRA
//! tensors, the best tensors so far and the optimizer's moments, written to a new file and then
//! named by a small JSON state written last, so a run killed at any moment resumes from its last
//! complete checkpoint with the same data order.

use super::dataset::{Dataset, Example};
use super::export::{write_adapter, AdapterMeta};
use super::llama::{
    read_shape, training_device, LlamaShape, LoraConfig, LoraModel, Pass, Sequence,
};
use super::optim::{learning_rate, Accumulator, AdamW, AdamWConfig};
use super::TrainError;
use crate::engine::{ChatTokenizer, EncodedExample};
use crate::progress::CancelToken;
use crate::store::{AdapterRecord, ModelRecord, RunRecord, Store};
use candle_core::{backprop::GradStore, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    /// Adapter rank, alpha, targets and seed.
    pub lora: LoraConfig,
    /// Optimizer settings.
    pub optimizer: AdamWConfig,
    /// Passes over the training examples at most (early stopping may end sooner).
    pub epochs: f64,
    /// Optimizer steps at most (None: as many as the epochs take).
    pub max_steps: Option<usize>,
    /// Tokens per packed sequence; longer examples are cut.
    pub sequence_tokens: usize,
    /// Sequences per optimizer step.
    pub accumulation: usize,
    /// Share of the steps spent warming the learning rate up.
    pub warmup_fraction: f64,
    /// Evaluate held-out loss every this many steps (0: about four times per epoch).
    pub eval_every: usize,
    /// Stop after this many evaluations without improvement.
    pub patience: usize,
    /// Write a checkpoint every this many steps.
    pub checkpoint_every: usize,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            lora: LoraConfig::default(),
            optimizer: AdamWConfig::default(),
            epochs: 3.0,
            max_steps: None,
            sequence_tokens: 512,
            accumulation: 1,
            warmup_fraction: 0.08,
            eval_every: 0,
            patience: 2,
            checkpoint_every: 10,
        }
    }
}

/// What a training run will do, for `--dry-run`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainPlan {
    /// The dataset version.
    pub dataset: String,
    /// Base model architecture and size.
    pub shape: LlamaShape,
    /// Training examples (the user's own and replay).
    pub train_examples: usize,
    /// Held-out examples.
    pub test_examples: usize,
    /// Tokens computed per epoch: the packed sequences' inputs, where a prompt prefix that
    /// several examples of a sequence share runs once.
    pub tokens_per_epoch: usize,
    /// The examples' own tokens per epoch (prompts and replies, each prompt whole).
    pub example_tokens_per_epoch: usize,
    /// Reply tokens per epoch (what the loss is computed on).
    pub reply_tokens_per_epoch: usize,
    /// Packed sequences per epoch.
    pub sequences_per_epoch: usize,
    /// Optimizer steps planned.
    pub steps: usize,
    /// Trainable LoRA parameters.
    pub lora_parameters: u64,
    /// Estimated peak memory, bytes.
    pub memory_bytes: u64,
    /// Training speed measured on this machine (tokens/s), when measured.
    pub measured_tokens_per_second: Option<f64>,
    /// Estimated duration, seconds, when measured.
    pub eta_seconds: Option<f64>,
}

/// One progress event of a run.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// The run starts (or resumes at `step`).
    Started {
        /// Run id.
        run: i64,
        /// Step it starts at (0 for a new run).
        step: usize,
        /// Steps planned.
        total_steps: usize,
    },
    /// One optimizer step finished.
    Step {
        /// Steps done.
        step: usize,
        /// Steps planned.
        total_steps: usize,
        /// Training loss of this step.
        loss: f64,
        /// Learning rate used.
        learning_rate: f64,
        /// Tokens per second of this step.
        tokens_per_second: f64,
        /// Estimated seconds left.
        eta_seconds: f64,
    },
    /// Held-out loss measured.
    Eval {
        /// Steps done.
        step: usize,
        /// Mean held-out loss (nats per reply token).
        loss: f64,
        /// The best so far.
        best: f64,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Steps done.
        step: usize,
    },
    /// Held-out loss stopped improving; training ends early.
    EarlyStop {
        /// Steps done.
        step: usize,
    },
}

/// What a finished run produced.
#[derive(Clone, Debug, Serialize)]
pub struct TrainOutcome {
    /// The registered adapter.
    pub adapter: AdapterRecord,
    /// Held-out loss of the base model (candle, nats per reply token).
    pub base_eval_loss: f64,
    /// Held-out loss of the adapter kept (the best evaluation).
    pub best_eval_loss: f64,
    /// Steps run.
    pub steps: usize,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// Step the run resumed from (0 for a fresh run).
    pub resumed_from: usize,
    /// Training tokens per second over the run.
    pub tokens_per_second: f64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// One point of the loss curve.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HistoryPoint {
    step: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    train: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    eval: Option<f64>,
}

/// What the JSON beside a checkpoint holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    tensors: String,
    best_eval: f64,
    base_eval: f64,
    best_step: usize,
    evals_without_gain: usize,
    history: Vec<HistoryPoint>,
    tokens: u64,
}

fn encode_all(
    tokenizer: &ChatTokenizer,
    examples: &[&Example],
    max_tokens: usize,
) -> Result<Vec<EncodedExample>, TrainError> {
    examples
        .iter()
        .map(|e| {
            let mut enc = tokenizer.encode_example(&e.messages, &e.reply)?;
            // Keep the prompt and the start of the reply; a prompt alone teaches nothing.
            enc.tokens.truncate(max_tokens + 1);
            Ok(enc)
        })
        .filter(|r| {
            r.as_ref()
                .map(|e: &EncodedExample| e.tokens.len() > e.prompt_len + 1)
                .unwrap_or(true)
        })
        .collect()
}

/// Examples share a prompt prefix in a packed sequence only from this many tokens on: a
/// shorter one saves less than it costs to keep unlike examples apart.
const MIN_SHARED_PREFIX: usize = 8;

/// Examples that begin with the same prompt tokens, as [`pack`] gathers them.
struct Group<'a> {
    members: Vec<&'a EncodedExample>,
    /// Tokens every member's prompt begins with (a lone member: its whole prompt).
    prefix: usize,
}

impl<'a> Group<'a> {
    fn new(first: &'a EncodedExample) -> Self {
        Self {
            members: vec![first],
            prefix: first.prompt_len.saturating_sub(1),
        }
    }

    /// The prefix the group would share with `e` added.
    fn prefix_with(&self, e: &EncodedExample) -> usize {
        let first = &self.members[0].tokens;
        let common = first
            .iter()
            .zip(&e.tokens)
            .take(self.prefix)
            .take_while(|(a, b)| a == b)
            .count();
        common.min(e.prompt_len.saturating_sub(1))
    }

    /// Whether the members compute a shared prefix.
    fn shares(&self) -> bool {
        self.members.len() >= 2 && self.prefix >= MIN_SHARED_PREFIX
    }

    /// Input tokens the group computes, with `extra` added and `prefix` shared.
    fn cost(&self, extra: Option<&EncodedExample>, prefix: usize) -> usize {
        let n = self.members.len() + usize::from(extra.is_some());
        let sum: usize = self
            .members
            .iter()
            .copied()
            .chain(extra)
            .map(|e| e.tokens.len() - 1)
            .sum();
        if n >= 2 && prefix >= MIN_SHARED_PREFIX {
            sum + prefix - n * prefix
        } else {
            sum
        }
    }

    fn push_to(&self, seq: &mut Sequence) {
        let examples: Vec<(&[u32], usize)> = self
            .members
            .iter()
            .map(|e| (e.tokens.as_slice(), e.prompt_len))
            .collect();
        seq.push_shared(&examples, if self.shares() { self.prefix } else { 0 });
    }
}

/// Pack examples into sequences of at most `max_tokens` input tokens.
///
/// First, each example joins the group (of at most `max_tokens`) whose examples begin with the
/// most of the same tokens — for drafting prompts, the same system prompt and format rules, up
/// to the topic — and each group computes that common beginning once instead of once per
/// example: on the sample writing a fifth of all tokens. Then the groups fill sequences in the
/// order they were started (first fit), so small groups and lone examples share a sequence.
fn pack(examples: &[&EncodedExample], max_tokens: usize) -> Vec<Sequence> {
    let mut groups: Vec<Group> = Vec::new();
    for &e in examples {
        let best = groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let prefix = g.prefix_with(e);
                // Most of the group's shared prompt must stay shared: another format's
                // example would cut it to the first words of the system prompt.
                (prefix >= MIN_SHARED_PREFIX
                    && 2 * prefix >= g.prefix
                    && g.cost(Some(e), prefix) <= max_tokens)
                    .then_some((i, prefix))
            })
            .max_by_key(|&(i, prefix)| (prefix, std::cmp::Reverse(i)));
        match best {
            Some((i, prefix)) => {
                groups[i].members.push(e);
                groups[i].prefix = prefix;
            }
            None => groups.push(Group::new(e)),
        }
    }
    let mut sequences: Vec<Sequence> = Vec::new();
    for g in &groups {
        let cost = g.cost(None, g.prefix);
        match sequences.iter_mut().find(|s| s.len() + cost <= max_tokens) {
            Some(seq) => g.push_to(seq),
            None => {
                let mut seq = Sequence::default();
                g.push_to(&mut seq);
                sequences.push(seq);
            }
        }
    }
    sequences
}

/// A seeded Fisher–Yates shuffle (epoch order is part of what makes a resume exact).
fn shuffled<T: Copy>(items: &[T], seed: u64) -> Vec<T> {
    let mut out = items.to_vec();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..out.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// Everything derived from the dataset before training starts.
struct Prepared {
    shape: LlamaShape,
    train: Vec<EncodedExample>,
    test: Vec<EncodedExample>,
    schedule: Vec<Sequence>,
    sequences_per_epoch: usize,
    steps: usize,
}

impl Prepared {
    /// Input tokens the first epoch's packed sequences compute.
    fn tokens_per_epoch(&self) -> usize {
        self.schedule
            .iter()
            .take(self.sequences_per_epoch)
            .map(Sequence::len)
            .sum()
    }
}

impl TrainParams {
    /// Refuse settings no run should start with: a shell (or a page) may pass anything, and
    /// a rank of a million or a sequence of a billion tokens would exhaust memory before the
    /// first step instead of failing with a reason.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |what: String| Err(TrainError::Data(what));
        if !(1..=256).contains(&self.lora.rank) {
            return bad(format!(
                "LoRA rank {} is out of range (1 to 256)",
                self.lora.rank
            ));
        }
        if !(self.epochs.is_finite() && self.epochs > 0.0 && self.epochs <= 1000.0) {
            return bad(format!(
                "{} epochs is out of range (above 0, at most 1000)",
                self.epochs
            ));
        }
        if self.max_steps.is_some_and(|s| s == 0 || s > 10_000_000) {
            return bad("max steps must be between 1 and 10,000,000".into());
        }
        if !(16..=32_768).contains(&self.sequence_tokens) {
            return bad(format!(
                "sequence length {} tokens is out of range (16 to 32768)",
                self.sequence_tokens
            ));
        }
        if !(1..=1024).contains(&self.accumulation) {
            return bad(format!(
                "accumulation {} is out of range (1 to 1024)",
                self.accumulation
            ));
        }
        let lr = self.optimizer.learning_rate;
        if !(lr.is_finite() && lr > 0.0 && lr < 1.0) {
            return bad(format!(
                "learning rate {lr} is out of range (above 0, below 1)"
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_fraction) {
            return bad(format!(
                "warm-up share {} is out of range (0 to below 1)",
                self.warmup_fraction
            ));
        }
        Ok(())
    }
}

fn prepare(
    base_path: &Path,
    dataset: &Dataset,
    params: &TrainParams,
) -> Result<Prepared, TrainError> {
    params.validate()?;
    let shape = read_shape(base_path)?;
    let tokenizer = ChatTokenizer::load(base_path)?;
    let train_ex: Vec<&Example> = dataset.split("train").collect();
    let test_ex: Vec<&Example> = dataset.split("test").filter(|e| e.kind == "user").collect();
    if train_ex.is_empty() {
        return Err(TrainError::Data(format!(
            "dataset {} has no training examples",
            dataset.record.id
        )));
    }
    let train = encode_all(&tokenizer, &train_ex, params.sequence_tokens)?;
    let test = encode_all(&tokenizer, &test_ex, params.sequence_tokens)?;
    if train.is_empty() {
        return Err(TrainError::Data(format!(
            "no training example of dataset {} fits {} tokens with room for its reply",
            dataset.record.id, params.sequence_tokens
        )));
    }
    if test.is_empty() {
        return Err(TrainError::Data(format!(
            "dataset {} has no held-out examples to stop on; import more documents",
            dataset.record.id
        )));
    }
    let epochs = params.epochs.max(0.01);
    let mut schedule = Vec::new();
    let mut sequences_per_epoch = 0;
    for epoch in 0..epochs.ceil() as u64 {
        let refs: Vec<&EncodedExample> = train.iter().collect();
        let order = shuffled(&refs, params.lora.seed ^ epoch);
        let packed = pack(&order, params.sequence_tokens);
        if epoch == 0 {
            sequences_per_epoch = packed.len();
        }
        schedule.extend(packed);
    }
    let micro =
        ((sequences_per_epoch as f64 * epochs).round() as usize).clamp(1, schedule.len().max(1));
    schedule.truncate(micro);
    let accumulation = params.accumulation.max(1);
    let mut steps = micro.div_ceil(accumulation);
    if let Some(max) = params.max_steps {
        steps = steps.min(max.max(1));
    }
    Ok(Prepared {
        shape,
        train,
        test,
        schedule,
        sequences_per_epoch,
        steps,
    })
}

/// Peak memory estimate: f32 base weights, LoRA tensors with gradients and moments, and the
/// activations one packed sequence keeps for backpropagation.
fn memory_estimate(shape: &LlamaShape, params: &TrainParams) -> u64 {
    let t = params.sequence_tokens as u64;
    let (d, f, h) = (
        shape.embedding as u64,
        shape.feed_forward as u64,
        shape.heads as u64,
    );
    let weights = shape.parameters() * 4;
    let lora = shape.lora_parameters(&params.lora) * 4 * 4;
    // Per token and layer the graph keeps ~8 model-width and 2 feed-forward-width tensors (the
    // fused kernels keep one output each, attention recomputes its weights when going
    // backward); one layer's attention weights exist at a time. Checked against `twin bench
    // train` on SmolLM2-135M: 512 tokens estimate 1.4 GiB, measured peak 1.37 GiB.
    let per_layer = t * (8 * d + 2 * f);
    let activations = (shape.layers as u64 * per_layer + h * t * t) * 4;
    // Logits and their gradient.
    let head = t * shape.vocab as u64 * 4 * 2;
    weights + lora + activations + head + (256 << 20)
}

/// The plan for training `dataset` on the model at `base_path`; with `measure`, one step is
/// timed on this machine for the ETA.
pub fn plan(
    base_path: &Path,
    dataset: &Dataset,
    params: &TrainParams,
    measure: bool,
) -> Result<TrainPlan, TrainError> {
    let prepared = prepare(base_path, dataset, params)?;
    let example_tokens_per_epoch: usize = prepared.train.iter().map(|e| e.tokens.len() - 1).sum();
    let tokens_per_epoch = prepared.tokens_per_epoch();
    let reply_tokens_per_epoch: usize = prepared
        .train
        .iter()
        .map(|e| e.tokens.len() - e.prompt_len)
        .sum();
    let planned_tokens: usize = prepared
        .schedule
        .iter()
        .take(prepared.steps * params.accumulation.max(1))
        .map(Sequence::len)
        .sum();
    let (measured, eta) = if measure {
        let device = training_device();
        let model = LoraModel::load(base_path, &params.lora, &device)?;
        let seq = &prepared.schedule[0];
        // The first step pays for allocations; the second is the one timed.
        let mut rate = 0.0;
        for _ in 0..2 {
            let started = Instant::now();
            forward_backward(&model, seq)?;
            rate = seq.len() as f64 / started.elapsed().as_secs_f64();
        }
        let evals = prepared
            .steps
            .div_ceil(eval_interval(params, &prepared).max(1))
            + 1;
        let eval_tokens: usize = prepared.test.iter().map(|e| e.tokens.len()).sum();
        // Evaluation runs forward only, about three times faster per token than a step.
        let eta = planned_tokens as f64 / rate + (evals * eval_tokens) as f64 / (3.0 * rate);
        (Some(rate), Some(eta))
    } else {
        (None, None)
    };
    Ok(TrainPlan {
        dataset: dataset.record.id.clone(),
        lora_parameters: prepared.shape.lora_parameters(&params.lora),
        memory_bytes: memory_estimate(&prepared.shape, params),
        shape: prepared.shape,
        train_examples: prepared.train.len(),
        test_examples: prepared.test.len(),
        tokens_per_epoch,
        example_tokens_per_epoch,
        reply_tokens_per_epoch,
        sequences_per_epoch: prepared.sequences_per_epoch,
        steps: prepared.steps,
        measured_tokens_per_second: measured,
        eta_seconds: eta,
    })
}

fn eval_interval(params: &TrainParams, prepared: &Prepared) -> usize {
    if params.eval_every > 0 {
        return params.eval_every;
    }
    let per_epoch = prepared
        .sequences_per_epoch
        .div_ceil(params.accumulation.max(1));
    (per_epoch / 4).max(1)
}

/// A training pass over `seq`: its mean loss and the gradients of every tracked tensor.
///
/// On the CPU it runs inside candle's rayon pool (`Device::with_context`). A step is about a
/// thousand short parallel sections (matrix products, fused kernels); called from outside the
/// pool, each would hand its work over and put this thread to sleep until it is done.
fn forward_backward(model: &LoraModel, seq: &Sequence) -> Result<(f32, GradStore), TrainError> {
    model.device().with_context(|| {
        let (loss, _) = model.loss(seq, Pass::Train)?;
        let grads = loss.backward()?;
        Ok((loss.to_scalar::<f32>()?, grads))
    })
}

/// Mean held-out loss per reply token, without building a graph.
fn evaluate(model: &LoraModel, test: &[Sequence], pass: Pass) -> Result<f64, TrainError> {
    model.device().with_context(|| {
        let mut total = 0.0;
        let mut count = 0usize;
        for seq in test {
            let (loss, n) = model.loss(seq, pass)?;
            total += f64::from(loss.to_scalar::<f32>()?) * n as f64;
            count += n;
        }
        Ok(total / count.max(1) as f64)
    })
}

fn run_key(base_sha256: &str, dataset: &str, params: &TrainParams) -> String {
    let mut h = blake3::Hasher::new();
    h.update(base_sha256.as_bytes());
    h.update(dataset.as_bytes());
    h.update(serde_json::to_string(params).unwrap_or_default().as_bytes());
    h.finalize().to_hex()[..16].to_string()
}

fn snapshot(vars: &[(String, candle_core::Var)]) -> Result<Vec<Tensor>, TrainError> {
    Ok(vars
        .iter()
        .map(|(_, v)| v.as_tensor().copy())
        .collect::<Result<Vec<_>, _>>()?)
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_checkpoint(
    dir: &Path,
    state: &CheckpointState,
    vars: &[(String, candle_core::Var)],
    best: &[Tensor],
    optimizer: &AdamW,
) -> Result<(), TrainError> {
    let mut tensors: HashMap<String, Tensor> = optimizer.state();
    for (i, (name, var)) in vars.iter().enumerate() {
        tensors.insert(name.clone(), var.as_tensor().clone());
        tensors.insert(format!("best.{name}"), best[i].clone());
    }
    // Every file is written beside its final name, flushed to disk, then renamed over it: a
    // kill at any instant leaves either the old checkpoint or the new one, never a torn file
    // that `checkpoint.json` points to (a cancel right after a checkpoint rewrites the same
    // step's file).
    let file = dir.join(&state.tensors);
    let partial = dir.join(format!("{}.partial", state.tensors));
    candle_core::safetensors::save(&tensors, &partial)?;
    sync_file(&partial)?;
    std::fs::rename(&partial, &file).map_err(io(&file))?;
    let json = dir.join("checkpoint.json");
    let tmp = dir.join("checkpoint.json.partial");
    let text =
        serde_json::to_string_pretty(state).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
    std::fs::write(&tmp, text).map_err(io(&tmp))?;
    sync_file(&tmp)?;
    std::fs::rename(&tmp, &json).map_err(io(&json))?;
    // The renames themselves reach the disk with the folder.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    // Older tensor files are no longer named by the state.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("checkpoint-") && name != state.tensors {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

/// A checkpoint's state and its tensors by name.
type Checkpoint = (CheckpointState, HashMap<String, Tensor>);

fn sync_file(path: &Path) -> Result<(), TrainError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// The run's last checkpoint, or `None` to start from step 0: also when it cannot be read (a
/// checkpoint left by an older build, or a disk fault), so a damaged checkpoint costs the
/// steps since the start, never every retry.
fn read_checkpoint(
    dir: &Path,
    device: &candle_core::Device,
) -> Result<Option<Checkpoint>, TrainError> {
    let json = dir.join("checkpoint.json");
    let Ok(text) = std::fs::read_to_string(&json) else {
        return Ok(None);
    };
    let state: CheckpointState = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{}: {e}; starting the run over", json.display());
            return Ok(None);
        }
    };
    match candle_core::safetensors::load(dir.join(&state.tensors), device) {
        Ok(tensors) => Ok(Some((state, tensors))),
        Err(e) => {
            tracing::warn!("{}: {e}; starting the run over", state.tensors);
            Ok(None)
        }
    }
}

/// The sha256 and size of the adapter file just written (one hashing routine for every file).
fn sha256_file(path: &Path) -> Result<(String, u64), TrainError> {
    let sha = crate::models::registry::sha256_file(path).map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let size = std::fs::metadata(path).map_err(io(path))?.len();
    Ok((sha, size))
}

/// Train an adapter for `base` on `dataset`, register it and make it the default channel's
/// adapter. An unfinished run with the same base, dataset and parameters is resumed from its
/// last checkpoint. `name` names the adapter (default `voice-<n>`).
pub fn train(
    store: &Store,
    base: &ModelRecord,
    dataset: &Dataset,
    params: &TrainParams,
    name: Option<&str>,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<TrainOutcome, TrainError> {
    let _span = tracing::info_span!("train", dataset = %dataset.record.id).entered();
    let started = Instant::now();
    let base_path = PathBuf::from(&base.path);
    dataset.check_base(base)?;
    let prepared = prepare(&base_path, dataset, params)?;
    let data_dir = store
        .path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let key = run_key(&base.sha256, &dataset.record.id, params);
    let mut run = match store.resumable_run(&key)? {
        Some(r) => r,
        None => {
            let mut r = RunRecord {
                id: 0,
                run_key: key.clone(),
                status: "running".into(),
                base_sha256: base.sha256.clone(),
                dataset_id: dataset.record.id.clone(),
                params: serde_json::to_value(params).unwrap_or_default(),
                dir: String::new(),
                step: 0,
                total_steps: prepared.steps as i64,
                history: serde_json::json!([]),
                adapter_id: None,
                error: None,
                created_at: 0,
                updated_at: 0,
            };
            r.dir = data_dir
                .join("training")
                .join(format!("run-{key}"))
                .to_string_lossy()
                .into_owned();
            r.id = store.put_run(&r)?;
            r
        }
    };
    let dir = PathBuf::from(&run.dir);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;

    let device = training_device();
    let model = LoraModel::load(&base_path, &params.lora, &device)?;
    let vars = model.lora_vars();
    let mut optimizer = AdamW::new(vars.clone(), params.optimizer.clone())?;
    let test: Vec<Sequence> = {
        let refs: Vec<&EncodedExample> = prepared.test.iter().collect();
        pack(&refs, params.sequence_tokens)
    };
    let eval_every = eval_interval(params, &prepared);
    let mut state = match read_checkpoint(&dir, &device)? {
        Some((state, tensors)) => {
            for (name, var) in &vars {
                let t = tensors
                    .get(name)
                    .ok_or_else(|| TrainError::Checkpoint(format!("{name} is missing")))?;
                var.set(t)?;
            }
            optimizer.restore(&tensors, state.step)?;
            let best = vars
                .iter()
                .map(|(name, _)| {
                    tensors
                        .get(&format!("best.{name}"))
                        .cloned()
                        .ok_or_else(|| TrainError::Checkpoint(format!("best.{name} is missing")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (state, best)
        }
        None => {
            let base_eval = evaluate(&model, &test, Pass::Base)?;
            let st = CheckpointState {
                step: 0,
                tensors: String::new(),
                best_eval: base_eval,
                base_eval,
                best_step: 0,
                evals_without_gain: 0,
                history: vec![HistoryPoint {
                    step: 0,
                    train: None,
                    eval: Some(base_eval),
                }],
                tokens: 0,
            };
            (st, snapshot(&vars)?)
        }
    };
    let resumed_from = state.0.step;
    run.status = "running".into();
    store.update_run(&run)?;
    on_event(TrainEvent::Started {
        run: run.id,
        step: resumed_from,
        total_steps: prepared.steps,
    });
    if resumed_from == 0 {
        on_event(TrainEvent::Eval {
            step: 0,
            loss: state.0.base_eval,
            best: state.0.base_eval,
        });
    }

    let accumulation = params.accumulation.max(1);
    let warmup = ((prepared.steps as f64 * params.warmup_fraction).round() as usize).max(1);
    let mut accumulator = Accumulator::new(vars.len());
    let mut step_seconds_avg: Option<f64> = None;
    let mut stopped_early = false;
    let mut tokens_this_session = 0u64;
    let save = |state: &mut (CheckpointState, Vec<Tensor>),
                run: &mut RunRecord,
                optimizer: &AdamW|
     -> Result<(), TrainError> {
        state.0.tensors = format!("checkpoint-{:06}.safetensors", state.0.step);
        write_checkpoint(&dir, &state.0, &vars, &state.1, optimizer)?;
        run.step = state.0.step as i64;
        run.history = serde_json::to_value(&state.0.history).unwrap_or_default();
        store.update_run(run)?;
        Ok(())
    };

    let mut step = state.0.step;
    while step < prepared.steps {
        let step_started = Instant::now();
        let mut loss_sum = 0.0;
        let mut tokens = 0usize;
        for micro in 0..accumulation {
            if cancel.is_cancelled() {
                save(&mut state, &mut run, &optimizer)?;
                run.status = "cancelled".into();
                store.update_run(&run)?;
                return Err(TrainError::Cancelled);
            }
            let Some(seq) = prepared.schedule.get(step * accumulation + micro) else {
                break;
            };
            let (loss, grads) = forward_backward(&model, seq)?;
            loss_sum += f64::from(loss);
            accumulator.add(&vars, &grads)?;
            tokens += seq.len();
        }
        let micro_done = accumulator.count.max(1);
        let lr = learning_rate(params.optimizer.learning_rate, step, warmup, prepared.steps);
        optimizer.step(&accumulator.take_mean()?, lr)?;
        step += 1;
        state.0.step = step;
        state.0.tokens += tokens as u64;
        tokens_this_session += tokens as u64;
        let loss = loss_sum / micro_done as f64;
        state.0.history.push(HistoryPoint {
            step,
            train: Some(loss),
            eval: None,
        });
        let secs = step_started.elapsed().as_secs_f64();
        let avg = step_seconds_avg.map_or(secs, |a| 0.8 * a + 0.2 * secs);
        step_seconds_avg = Some(avg);
        on_event(TrainEvent::Step {
            step,
            total_steps: prepared.steps,
            loss,
            learning_rate: lr,
            tokens_per_second: tokens as f64 / secs.max(1e-9),
            eta_seconds: avg * (prepared.steps - step) as f64,
        });

        if step % eval_every == 0 || step == prepared.steps {
            let eval = evaluate(&model, &test, Pass::Eval)?;
            state.0.history.push(HistoryPoint {
                step,
                train: None,
                eval: Some(eval),
            });
            if eval < state.0.best_eval - 1e-4 {
                state.0.best_eval = eval;
                state.0.best_step = step;
                state.0.evals_without_gain = 0;
                state.1 = snapshot(&vars)?;
            } else {
                state.0.evals_without_gain += 1;
            }
            on_event(TrainEvent::Eval {
                step,
                loss: eval,
                best: state.0.best_eval,
            });
            if state.0.evals_without_gain >= params.patience.max(1) {
                stopped_early = true;
                on_event(TrainEvent::EarlyStop { step });
                break;
            }
        }
        if step % params.checkpoint_every.max(1) == 0 && step < prepared.steps {
            save(&mut state, &mut run, &optimizer)?;
            on_event(TrainEvent::Checkpoint { step });
        }
    }

    // Keep the best evaluation's weights, not the last step's.
    for (i, (_, var)) in vars.iter().enumerate() {
        var.set(&state.1[i])?;
    }
    let adapters_dir = data_dir.join("adapters");
    std::fs::create_dir_all(&adapters_dir).map_err(io(&adapters_dir))?;
    let name = match name {
        Some(n) => n.to_string(),
        None => format!("voice-{}", store.adapters()?.len() + 1),
    };
    let file_name: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // The run's id too: a second run with the same settings (a re-train after the first one
    // finished) must not overwrite the first adapter's file, nor collide with its record —
    // the training kill trials found both.
    let path = adapters_dir.join(format!("{file_name}-{}-{}.gguf", &key[..8], run.id));
    write_adapter(
        &path,
        &AdapterMeta {
            name: name.clone(),
            architecture: prepared.shape.architecture.clone(),
            alpha: params.lora.alpha,
            base_sha256: base.sha256.clone(),
            dataset: dataset.record.id.clone(),
        },
        &vars,
    )?;
    let (sha256, size) = sha256_file(&path)?;
    let seconds = started.elapsed().as_secs_f64();
    let tokens_per_second = tokens_this_session as f64 / seconds.max(1e-9);
    let metrics = serde_json::json!({
        "base_eval_loss": state.0.base_eval,
        "best_eval_loss": state.0.best_eval,
        "best_step": state.0.best_step,
        "steps": step,
        "total_steps": prepared.steps,
        "stopped_early": stopped_early,
        "tokens": state.0.tokens,
        "tokens_per_second": tokens_per_second,
        "history": state.0.history,
    });
    let mut record = AdapterRecord {
        id: 0,
        name,
        path: path.to_string_lossy().into_owned(),
        architecture: prepared.shape.architecture.clone(),
        base_sha256: base.sha256.clone(),
        base_name: base.name.clone(),
        dataset_id: dataset.record.id.clone(),
        params: serde_json::to_value(params).unwrap_or_default(),
        metrics,
        sha256,
        size,
        created_at: crate::store::now_secs(),
    };
    run.step = step as i64;
    run.history = serde_json::to_value(&state.0.history).unwrap_or_default();
    record.id = store.finish_run(&record, &run, super::adapters::DEFAULT_CHANNEL)?;
    // The checkpoints served their purpose; the adapter and the run record remain.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(TrainOutcome {
        adapter: record,
        base_eval_loss: state.0.base_eval,
        best_eval_loss: state.0.best_eval,
        steps: step,
        stopped_early,
        resumed_from,
        tokens_per_second,
        seconds,
    })
}

/// Training speed measured over a few steps (nothing is stored): what `twin bench train` shows.
#[derive(Clone, Debug)]
pub struct TrainSpeed {
    /// Where candle ran the steps.
    pub device: String,
    /// `general.architecture` of the base model.
    pub architecture: String,
    /// Parameters of the base model.
    pub parameters: u64,
    /// Trainable LoRA parameters.
    pub lora_parameters: u64,
    /// Seconds to load the f32 weights.
    pub load_seconds: f64,
    /// Tokens per second of each timed step, sorted.
    pub step_rates: Vec<f64>,
    /// All timed tokens over all timed seconds.
    pub overall_tokens_per_second: f64,
    /// Tokens one epoch computes per word of the user's writing it teaches.
    pub tokens_per_word: f64,
}

/// `steps` training steps on `dataset` after one untimed warm-up step; nothing is stored.
pub fn measure_speed(
    base_path: &Path,
    dataset: &Dataset,
    params: &TrainParams,
    steps: usize,
) -> Result<TrainSpeed, TrainError> {
    let prepared = prepare(base_path, dataset, params)?;
    let load_started = Instant::now();
    let device = training_device();
    let model = LoraModel::load(base_path, &params.lora, &device)?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    let vars = model.lora_vars();
    let mut optimizer = AdamW::new(vars.clone(), params.optimizer.clone())?;
    let mut accumulator = Accumulator::new(vars.len());
    let mut step_rates = Vec::new();
    let (mut timed_tokens, mut timed_seconds) = (0usize, 0.0f64);
    // One warm-up step pays for first allocations; it is not counted.
    for (i, seq) in prepared.schedule.iter().take(steps + 1).enumerate() {
        let started = Instant::now();
        let (_, grads) = forward_backward(&model, seq)?;
        accumulator.add(&vars, &grads)?;
        optimizer.step(&accumulator.take_mean()?, params.optimizer.learning_rate)?;
        // GPU kernels run asynchronously: without waiting, a step's time would be its launches.
        device.synchronize()?;
        if i > 0 {
            let seconds = started.elapsed().as_secs_f64();
            step_rates.push(seq.len() as f64 / seconds);
            timed_tokens += seq.len();
            timed_seconds += seconds;
        }
    }
    step_rates.sort_by(f64::total_cmp);
    let words: f64 = dataset.record.stats["train_words"].as_f64().unwrap_or(0.0);
    let device = match &device {
        candle_core::Device::Cpu => format!(
            "CPU, {} threads",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        candle_core::Device::Cuda(_) => "CUDA GPU 0".to_string(),
        candle_core::Device::Metal(_) => "Metal GPU".to_string(),
    };
    Ok(TrainSpeed {
        device,
        architecture: prepared.shape.architecture.clone(),
        parameters: prepared.shape.parameters(),
        lora_parameters: prepared.shape.lora_parameters(&params.lora),
        load_seconds,
        step_rates,
        // An epoch's time is the sum of its steps' times, so the estimate uses the timed steps'
        // tokens over their total time, not the median step.
        overall_tokens_per_second: timed_tokens as f64 / timed_seconds.max(1e-9),
        // What an epoch computes (packed, shared prompt prefixes once, replay examples
        // included) per word of the user's writing it teaches.
        tokens_per_word: prepared.tokens_per_epoch() as f64 / words.max(1.0),
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_damaged_checkpoint_starts_the_run_over_instead_of_failing_every_retry() {
        let dir = tempfile::tempdir().unwrap();
        let device = candle_core::Device::Cpu;
        std::fs::write(dir.path().join("checkpoint.json"), "{\"step\": 3, \"tens").unwrap();
        assert!(super::read_checkpoint(dir.path(), &device)
            .unwrap()
            .is_none());
    }

    use super::*;

    #[test]
    fn settings_no_run_should_start_with_are_refused_with_a_reason() {
        assert!(TrainParams::default().validate().is_ok());
        let mut p = TrainParams::default();
        p.lora.rank = 1_000_000;
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("rank 1000000"));
        let p = TrainParams {
            sequence_tokens: 1 << 30,
            ..TrainParams::default()
        };
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("sequence length"));
        let p = TrainParams {
            epochs: f64::NAN,
            ..TrainParams::default()
        };
        assert!(p.validate().is_err());
        let p = TrainParams {
            max_steps: Some(0),
            ..TrainParams::default()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn packing_keeps_examples_whole_and_under_the_limit() {
        let a = EncodedExample {
            tokens: (0..10).collect(),
            prompt_len: 6,
        };
        let b = EncodedExample {
            tokens: (100..108).collect(),
            prompt_len: 3,
        };
        let c = EncodedExample {
            tokens: (200..215).collect(),
            prompt_len: 5,
        };
        let seqs = pack(&[&a, &b, &c], 20);
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[0].len(), 9 + 7);
        assert_eq!(seqs[0].positions[9], 0, "positions restart per example");
        assert_eq!(seqs[0].segments[9], 1);
        // Targets: predictions of tokens[prompt_len..] only.
        assert_eq!(seqs[0].targets.len(), (10 - 6) + (8 - 3));
        assert_eq!(seqs[0].targets[0], (5, 6));
        assert_eq!(seqs[1].targets.len(), 15 - 5);
    }

    #[test]
    fn examples_with_a_common_prompt_share_it_and_unlike_ones_fill_the_gaps() {
        let prompt = |topic: u32| -> Vec<u32> { (0..20).chain([topic]).collect() };
        let example = |topic: u32, reply: u32| EncodedExample {
            tokens: prompt(topic).into_iter().chain(reply..reply + 9).collect(),
            prompt_len: 21,
        };
        let (a, b, c) = (example(500, 600), example(501, 700), example(502, 800));
        let other = EncodedExample {
            tokens: (900..930).collect(),
            prompt_len: 10,
        };
        // Alone: 29 input tokens each.
        let seqs = pack(&[&a, &other, &b, &c], 70);
        assert_eq!(seqs.len(), 2);
        // a, b and c share their first 20 tokens: 20 + 3 × 9 = 47 tokens, not 87.
        assert_eq!(seqs[0].len(), 20 + 3 * 9);
        assert_eq!(seqs[0].shared.len(), 3);
        assert_eq!(seqs[0].targets.len(), 3 * 9);
        // Each example continues at the positions it has alone.
        assert_eq!(seqs[0].positions[20], 20);
        assert_eq!(seqs[0].positions[29], 20);
        assert_eq!(seqs[1].len(), 29);
        assert!(seqs[1].shared.is_empty());
        // With room for two only, c starts a group of its own, and a small unlike example
        // fills the gap c leaves rather than a sequence of its own.
        let small = EncodedExample {
            tokens: (950..962).collect(),
            prompt_len: 4,
        };
        let seqs = pack(&[&a, &b, &c, &small], 45);
        let lens: Vec<usize> = seqs.iter().map(Sequence::len).collect();
        assert_eq!(lens, [20 + 2 * 9, 29 + 11]);
    }

    #[test]
    fn a_shared_prefix_never_exceeds_what_the_examples_have_in_common() {
        let mut seq = Sequence::default();
        seq.push_shared(&[(&[1, 2, 3, 4, 5], 4), (&[1, 2, 9, 9, 9], 4)], 10);
        // Two tokens in common: stored once, then 2 + 2 input tokens of each example.
        assert_eq!(seq.tokens, [1, 2, 3, 4, 9, 9]);
        assert_eq!(seq.positions, [0, 1, 2, 3, 2, 3]);
        assert_eq!(seq.shared, [(1, 0), (2, 0)]);
        assert_eq!(seq.targets, [(3, 5), (5, 9)]);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let items: Vec<u32> = (0..50).collect();
        let a = shuffled(&items, 3);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, items);
        assert_eq!(a, shuffled(&items, 3));
        assert_ne!(a, shuffled(&items, 4));
    }
}
