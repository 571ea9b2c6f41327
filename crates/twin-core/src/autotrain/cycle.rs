//! One cycle: dataset → candidate → evaluation against the adapter in use → verdict. Each
//! phase is recorded before the next begins, so a cycle interrupted anywhere resumes where it
//! stopped: the dataset is kept by id, the training run resumes from its checkpoint, and the
//! evaluation run skips what it already measured.

use super::{AutotrainError, Change, CycleParams, CycleScores, SideScores, Trigger};
use crate::engine::ChatModelConfig;
use crate::error::{Classify, ErrorKind};
use crate::eval::{self, EvalParams, Summary};
use crate::library::Library;
use crate::models;
use crate::progress::{CancelToken, Progress, ProgressEvent};
use crate::prompt::templates::Templates;
use crate::store::{AdapterRecord, CycleRecord, ModelRecord, RunStatus, Store};
use crate::train::{self, adapters, Dataset, DatasetParams, TrainEvent, TrainParams};
use serde::Serialize;
use std::time::Instant;

/// What a running cycle reports.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export)]
pub enum AutotrainEvent {
    /// Progress of the cycle as a whole.
    Progress {
        /// The cycle.
        cycle: i64,
        /// `dataset`, `train` or `evaluate`.
        phase: String,
        /// Share of the whole cycle done (0 to 1).
        fraction: f64,
        /// New or edited documents it learns from.
        documents: usize,
    },
    /// The user is drafting or importing: the cycle waits.
    Paused {
        /// The cycle.
        cycle: i64,
    },
    /// The cycle ended (promoted, kept the adapter in use, or failed).
    Finished {
        /// The cycle as stored.
        cycle: Box<CycleRecord>,
    },
}

/// What a cycle runs with, from the service.
pub struct CycleContext<'a> {
    /// The library, on a connection of the cycle's own.
    pub library: &'a mut Library,
    /// How prompts name the author.
    pub author: String,
    /// How the chat model loads for the dataset and the evaluation (few threads).
    pub model_config: ChatModelConfig,
    /// Returns at once while the user is idle; blocks while they draft or import (and
    /// returns when `cancel` is set).
    pub yield_to_user: &'a (dyn Fn(i64) + Sync),
    /// Receives the cycle's events.
    pub on_event: &'a (dyn Fn(AutotrainEvent) + Sync),
    /// Stops the cycle; it resumes on the next start.
    pub cancel: &'a CancelToken,
}

/// Where each phase sits in the whole cycle's progress.
const PHASES: [(&str, f64, f64); 3] = [
    ("dataset", 0.0, 0.25),
    ("train", 0.25, 0.8),
    ("evaluate", 0.8, 1.0),
];

/// Record a new cycle woken by `trigger` for `change`; run it with [`run_cycle`].
pub fn start_cycle(
    store: &Store,
    base: &ModelRecord,
    trigger: Trigger,
    change: &Change,
    params: &CycleParams,
) -> Result<CycleRecord, AutotrainError> {
    let incumbent = incumbent(store, base)?;
    let mut record = CycleRecord {
        id: 0,
        status: RunStatus::Running,
        trigger: trigger.as_str().into(),
        phase: "dataset".into(),
        started_at: crate::store::now_secs(),
        finished_at: None,
        change: change.clone(),
        params: Some(params.clone()),
        dataset_id: None,
        incumbent_id: incumbent.as_ref().map(|a| a.id),
        incumbent_name: incumbent.map_or_else(|| base.name.clone(), |a| a.name),
        candidate_id: None,
        candidate_name: None,
        eval_run_id: None,
        scores: CycleScores::default(),
        promoted: false,
        reason: None,
        error: None,
    };
    record.id = store.put_cycle(&record)?;
    Ok(record)
}

/// The adapter the default channel uses with `base`, if any.
fn incumbent(store: &Store, base: &ModelRecord) -> Result<Option<AdapterRecord>, AutotrainError> {
    Ok(store
        .active_adapter(adapters::DEFAULT_CHANNEL)?
        .and_then(|a| a.adapter)
        .filter(|a| a.base_sha256 == base.sha256))
}

/// Run (or resume) `cycle` to its verdict. A cancelled cycle is left `cancelled` and resumes
/// on the next call; a failed one records its error (and its writing counts as seen, so the
/// same failure does not wake a cycle again until more writing arrives).
pub fn run_cycle(
    ctx: &mut CycleContext<'_>,
    mut cycle: CycleRecord,
) -> Result<CycleRecord, AutotrainError> {
    let _span = tracing::info_span!("autotrain", cycle = cycle.id).entered();
    cycle.status = RunStatus::Running;
    cycle.error = None;
    ctx.library.store().update_cycle(&cycle)?;
    let result = phases(ctx, &mut cycle);
    if matches!(&result, Err(e) if e.kind() != ErrorKind::Cancelled) && cycle.dataset_id.is_none() {
        ctx.library.store_mut().mark_writing_seen()?;
    }
    let store = ctx.library.store();
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Cancelled => {
            cycle.status = RunStatus::Cancelled;
            store.update_cycle(&cycle)?;
            return Err(AutotrainError::Cancelled);
        }
        Err(e) => {
            cycle.status = RunStatus::Failed;
            cycle.error = Some(e.to_string());
            cycle.finished_at = Some(crate::store::now_secs());
            store.update_cycle(&cycle)?;
            (ctx.on_event)(AutotrainEvent::Finished {
                cycle: Box::new(cycle.clone()),
            });
            return Err(e);
        }
    }
    (ctx.on_event)(AutotrainEvent::Finished {
        cycle: Box::new(cycle.clone()),
    });
    Ok(cycle)
}

/// Progress of one phase, mapped onto the whole cycle; it also yields to the user.
struct PhaseProgress<'a> {
    yield_to_user: &'a (dyn Fn(i64) + Sync),
    on_event: &'a (dyn Fn(AutotrainEvent) + Sync),
    cycle: i64,
    phase: usize,
    documents: usize,
}

impl PhaseProgress<'_> {
    fn at(&self, share: f64) {
        (self.yield_to_user)(self.cycle);
        let (name, from, to) = PHASES[self.phase];
        (self.on_event)(AutotrainEvent::Progress {
            cycle: self.cycle,
            phase: name.into(),
            fraction: from + (to - from) * share.clamp(0.0, 1.0),
            documents: self.documents,
        });
    }
}

impl Progress for PhaseProgress<'_> {
    fn report(&self, e: ProgressEvent) {
        if e.total > 0 {
            self.at(e.done as f64 / e.total as f64);
        }
    }
}

fn phases(ctx: &mut CycleContext<'_>, cycle: &mut CycleRecord) -> Result<(), AutotrainError> {
    let params: CycleParams = cycle.params.clone().ok_or_else(|| {
        AutotrainError::Train(train::TrainError::Data(format!(
            "cycle {} has unreadable settings",
            cycle.id
        )))
    })?;
    let change = cycle.change.clone();
    let mut scores = cycle.scores.clone();
    let base = models::resolve_chat_model(ctx.library.store(), None)?;
    let (yield_to_user, on_event, id) = (ctx.yield_to_user, ctx.on_event, cycle.id);
    let progress = |phase| PhaseProgress {
        yield_to_user,
        on_event,
        cycle: id,
        phase,
        documents: change.documents,
    };

    // 1. The dataset, incrementally; kept by id so a resume trains on the same one.
    let started = Instant::now();
    let dataset = match &cycle.dataset_id {
        Some(id) => Dataset::load(ctx.library.store(), Some(id))?,
        None => {
            let chat = models::load_chat_model(&base, &ctx.model_config)?;
            let templates = Templates::in_data_dir(ctx.library.data_dir())?;
            let dataset = train::dataset::build(
                ctx.library.store_mut(),
                &chat,
                &base.sha256,
                &templates,
                &DatasetParams {
                    author: ctx.author.clone(),
                    machine_drafts: if params.preference {
                        train::dataset::PREFERENCE_MACHINE_DRAFTS
                    } else {
                        train::dataset::MACHINE_DRAFTS
                    },
                    ..Default::default()
                },
                &progress(0),
                ctx.cancel,
            )?;
            ctx.library.store_mut().mark_writing_seen()?;
            let store = ctx.library.store();
            cycle.dataset_id = Some(dataset.record.id.clone());
            cycle.phase = "train".into();
            add_seconds(&mut scores, "dataset", started);
            cycle.scores = scores.clone();
            store.update_cycle(cycle)?;
            dataset
        }
    };

    // 2. The candidate, kept aside (not activated); a run interrupted earlier resumes.
    let store = ctx.library.store();
    let candidate = match find_candidate(store, cycle)? {
        Some(a) => a,
        None => {
            let started = Instant::now();
            let mut train_params = TrainParams {
                max_steps: params.max_steps,
                // Small LoRA checkpoints, written often: a quit or crash loses little.
                checkpoint_every: 5,
                activate: false,
                ..Default::default()
            };
            if params.preference {
                train_params.preference = Some(crate::train::PreferenceParams::default());
            }
            if let Some(lr) = params.learning_rate {
                train_params.optimizer.learning_rate = lr;
            }
            let train_progress = progress(1);
            let outcome = train::train(
                store,
                &base,
                &dataset,
                &train_params,
                None,
                ctx.cancel,
                &mut |e| match e {
                    TrainEvent::Step {
                        step, total_steps, ..
                    } => train_progress.at(step as f64 / total_steps.max(1) as f64),
                    TrainEvent::Started {
                        step, total_steps, ..
                    } => train_progress.at(step as f64 / total_steps.max(1) as f64),
                    _ => {}
                },
            )?;
            scores.resumed_from_step = outcome.resumed_from;
            scores.steps = outcome.steps;
            add_seconds(&mut scores, "train", started);
            outcome.adapter
        }
    };
    cycle.candidate_id = Some(candidate.id);
    cycle.candidate_name = Some(candidate.name.clone());
    cycle.phase = "evaluate".into();
    cycle.scores = scores.clone();
    store.update_cycle(cycle)?;

    // 3. The comparison on the dataset's held-out split.
    let started = Instant::now();
    let incumbent = cycle
        .incumbent_id
        .map(|id| adapters::find(store, &id.to_string()))
        .transpose()
        .ok()
        .flatten();
    let mut named = Vec::new();
    if let Some(i) = &incumbent {
        named.push(i.id.to_string());
    }
    named.push(candidate.id.to_string());
    let eval_params = EvalParams {
        dataset: Some(dataset.record.id.clone()),
        adapters: named,
        drafts: params.drafts,
        queries: 0,
        judge: false,
        author: ctx.author.clone(),
        named_only: Some(true),
        base_drafts: Some(incumbent.is_none()),
        ..Default::default()
    };
    let config = ChatModelConfig {
        context_tokens: eval::CONTEXT_TOKENS,
        ..ctx.model_config.clone()
    };
    let outcome = eval::run(
        ctx.library,
        &base,
        &config,
        &eval_params,
        &progress(2),
        ctx.cancel,
    )?;
    let store = ctx.library.store();
    let summary = Summary::load(store, outcome.run)?;
    let side = |config: &str, name: &str| side_scores(&summary, config, name);
    let cand = side(&format!("adapter:{}", candidate.id), &candidate.name);
    let inc = match &incumbent {
        Some(i) => side(&format!("adapter:{}", i.id), &i.name),
        None => side("base", &format!("{} (no adapter)", base.name)),
    };
    add_seconds(&mut scores, "evaluate", started);

    // 4. The verdict. The user's own choice made meanwhile wins over the gate.
    let verdict = super::judge(&cand, &inc, params.margin);
    let in_use_now = self::incumbent(store, &base)?.map(|a| a.id);
    let (promote, reason) = if in_use_now != cycle.incumbent_id {
        (
            false,
            format!(
                "{}; not put to use, because the adapter in use changed while it trained",
                verdict.reason
            ),
        )
    } else {
        (verdict.promote, verdict.reason)
    };
    if promote {
        adapters::activate(store, adapters::DEFAULT_CHANNEL, Some(&candidate), 1.0)?;
    }
    scores.candidate = Some(cand);
    scores.incumbent = Some(inc);
    scores.peak_memory_bytes = peak_memory_bytes();
    cycle.eval_run_id = Some(outcome.run);
    cycle.scores = scores.clone();
    cycle.promoted = promote;
    cycle.reason = Some(reason);
    cycle.phase = "decided".into();
    cycle.status = RunStatus::Done;
    cycle.finished_at = Some(crate::store::now_secs());
    store.update_cycle(cycle)?;
    Ok(())
}

/// The adapter this cycle already trained, if a kill came between the end of its training
/// and the cycle's record of it: an adapter on the cycle's dataset made since it started.
fn find_candidate(
    store: &Store,
    cycle: &CycleRecord,
) -> Result<Option<AdapterRecord>, AutotrainError> {
    if let Some(id) = cycle.candidate_id {
        if let Ok(a) = adapters::find(store, &id.to_string()) {
            return Ok(Some(a));
        }
    }
    let Some(dataset) = &cycle.dataset_id else {
        return Ok(None);
    };
    Ok(store
        .adapters()?
        .into_iter()
        .find(|a| &a.dataset_id == dataset && a.created_at >= cycle.started_at))
}

fn side_scores(summary: &Summary, config: &str, name: &str) -> SideScores {
    let style = summary.style_of(config);
    SideScores {
        name: name.to_string(),
        nll: summary.perplexity_of(config).map(|p| p.nll),
        style: style.map(|s| s.relative).filter(|s| s.is_finite()),
        sounds_like_you: summary
            .authorship
            .iter()
            .find(|a| a.config == config)
            .map(|a| a.mean),
        drafts: style.map_or(0, |s| s.texts),
    }
}

fn add_seconds(scores: &mut CycleScores, phase: &str, since: Instant) {
    *scores.seconds.entry(phase.to_string()).or_default() += since.elapsed().as_secs_f64();
}

/// The process's peak resident memory (Linux: `VmHWM`), bytes.
fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
