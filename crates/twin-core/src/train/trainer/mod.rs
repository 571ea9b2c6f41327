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
use crate::store::{AdapterRecord, ExampleKind, ModelRecord, RunRecord, RunStatus, Split, Store};
use candle_core::{backprop::GradStore, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

mod checkpoint;
mod packing;
mod plan;
mod preference;
mod speed;
use checkpoint::*;
use packing::*;
pub use plan::*;
pub use preference::{Objective as PreferenceObjective, PreferenceParams};
pub use speed::*;

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
    /// An adapter file to start from instead of a fresh adapter (same targets and rank): the
    /// run continues where that adapter ended. Part of the run's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_adapter: Option<String>,
    /// Train a preference term (LN-DPO by default) beside the next-token loss, on the pairs the dataset and
    /// the user's edits give (see `train::preferences`). Part of the run's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<PreferenceParams>,
    /// Whether the finished adapter becomes the default channel's at once. Automatic
    /// retraining keeps its candidates aside until they pass the promotion gate. Not part of
    /// the run's identity, nor of the parameters stored with the adapter.
    #[serde(skip, default = "activate_by_default")]
    pub activate: bool,
}

fn activate_by_default() -> bool {
    true
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
            init_adapter: None,
            preference: None,
            activate: true,
        }
    }
}

/// What a training run will do, for `--dry-run`.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
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
#[derive(ts_rs::TS)]
#[ts(export)]
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
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
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

/// Train an adapter for `base` on `dataset`, register it and (unless `params.activate` is off)
/// make it the default channel's adapter. An unfinished run with the same base, dataset and parameters is resumed from its
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
                status: RunStatus::Running,
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
            if let Some(from) = &params.init_adapter {
                super::export::read_adapter_into(Path::new(from), &vars)?;
            }
            let base_eval = evaluate(&model, &test, Pass::Base)?;
            // Continuing, the adapter started from is the one to beat (and is kept if no step
            // beats it).
            let start_eval = match params.init_adapter {
                Some(_) => evaluate(&model, &test, Pass::Eval)?,
                None => base_eval,
            };
            let st = CheckpointState {
                step: 0,
                tensors: String::new(),
                best_eval: start_eval,
                base_eval,
                best_step: 0,
                evals_without_gain: 0,
                history: vec![HistoryPoint {
                    step: 0,
                    train: None,
                    eval: Some(start_eval),
                }],
                tokens: 0,
            };
            (st, snapshot(&vars)?)
        }
    };
    // Preference pairs, with their reference margins (the adapter off), once per run.
    let pairs = match &params.preference {
        Some(preference_params) => {
            let templates = crate::prompt::templates::Templates::in_data_dir(&data_dir)?;
            let author = dataset.record.params["author"]
                .as_str()
                .unwrap_or("the author")
                .to_string();
            let edits = store.draft_edits(100_000)?;
            let raw = super::preferences::pairs(dataset, &edits, &templates, &author)?;
            let tokenizer = ChatTokenizer::load(&base_path)?;
            let encoded = preference::encode_pairs(
                &model,
                &tokenizer,
                &raw,
                params.sequence_tokens,
                preference_params.objective,
            )?;
            if encoded.is_empty() {
                return Err(TrainError::Data(
                    "no preference pairs: the dataset has no machine drafts and you have edited no draft".into(),
                ));
            }
            encoded
        }
        None => Vec::new(),
    };
    let resumed_from = state.0.step;
    run.status = RunStatus::Running;
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
                run.status = RunStatus::Cancelled;
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
        if let Some(pp) = &params.preference {
            let pair = &pairs[step % pairs.len()];
            let (loss, gap, grads) = preference::backward(&model, pair, pp)?;
            tracing::debug!(step, loss, gap, "preference term");
            accumulator.add_whole(&vars, &grads)?;
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
    record.id = store.finish_run(
        &record,
        &run,
        params.activate.then_some(super::adapters::DEFAULT_CHANNEL),
    )?;
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

#[cfg(test)]
mod tests;
