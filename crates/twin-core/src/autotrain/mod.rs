//! Automatic retraining: the twin keeps learning from new writing by itself.
//!
//! A cycle wakes when the user's own writing has grown by a threshold since the last cycle
//! (2,000 new or edited words by default), when writing from a new platform arrives, or on a
//! schedule (weekly, if anything changed). It then:
//! 1. rebuilds the dataset incrementally: back-translations are cached, replay answers and
//!    machine drafts reused, and the held-out split kept from the dataset before, so scores
//!    stay comparable across versions (see `train::dataset`);
//! 2. trains a candidate adapter, fresh on the whole rebuilt dataset, at low priority (one
//!    llama.cpp thread, `nice` on Linux), pausing at every step while the user drafts or
//!    imports, resumable from its checkpoints after a quit, crash or reboot;
//! 3. evaluates the candidate against the adapter in use (or the base model) on the same
//!    held-out split: held-out loss, style distance and "sounds like you" of drafts on
//!    held-out topics;
//! 4. promotes it only when it is better by a margin ([`gate`]), else keeps the adapter in use
//!    and records why.
//!
//! Every cycle is kept with its scores and verdict (`autotrain_cycles`); rollback stays
//! `twin adapters rollback`. The service runs [`run_cycle`] on a thread of its own and decides
//! when with [`due`]; the shells only render.
//!
//! Why fresh rather than continuing from the adapter in use: the rebuilt dataset holds all the
//! writing, a run over it costs the same either way at Twin's few-epoch schedule, and a chain
//! of continued adapters drifts with every cycle's noise, while fresh candidates are each
//! trained on the same recipe and differ only by the writing. The gate, not the lineage,
//! decides what is used.

mod cycle;
pub mod gate;
mod settings;

pub use crate::store::{
    Change, CycleParams, CycleRecord, CycleRecord as Cycle, CycleScores, SideScores,
};
pub use cycle::{run_cycle, start_cycle, AutotrainEvent, CycleContext};
pub use gate::{judge, Verdict};
pub use settings::AutotrainSettings;

use crate::store::{RunStatus, Store, StoreError};
use serde::{Deserialize, Serialize};

/// Errors of a cycle; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum AutotrainError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Building the dataset or training failed.
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    /// Evaluating failed.
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    /// The chat model could not be found or loaded.
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    /// A prompt template failed to load.
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    /// The adapter registry refused a change.
    #[error(transparent)]
    Adapter(#[from] crate::train::AdapterError),
    /// Cancelled (the app quit, or the user turned automation off); the cycle resumes later.
    #[error("cancelled")]
    Cancelled,
}

crate::error::classify!(AutotrainError {
    kind: Self::Cancelled => Cancelled;
    inner: Store, Train, Eval, Model, Prompt, Adapter;
});

/// What woke a cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
#[ts(export)]
pub enum Trigger {
    /// Enough new or edited words.
    Threshold,
    /// Writing from a platform no cycle had seen.
    Platform,
    /// The schedule, with something changed.
    Schedule,
    /// The user asked (`twin autotrain run`).
    Manual,
}

impl Trigger {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Threshold => "threshold",
            Self::Platform => "platform",
            Self::Schedule => "schedule",
            Self::Manual => "manual",
        }
    }
}

/// The writing added or edited since the last cycle built its dataset.
pub fn pending_change(store: &Store) -> Result<Change, StoreError> {
    let unseen = store.unseen_writing()?;
    let seen = store.seen_platforms()?;
    let new_platforms = if seen.is_empty() {
        Vec::new()
    } else {
        unseen
            .iter()
            .filter(|u| !seen.contains(&u.platform))
            .map(|u| u.platform.clone().unwrap_or_else(|| "files".into()))
            .collect()
    };
    Ok(Change {
        documents: unseen.iter().map(|u| u.documents).sum(),
        words: unseen.iter().map(|u| u.words).sum(),
        new_platforms,
    })
}

/// Whether a cycle is due now (`now` in seconds since the epoch), and why. `last` is the
/// newest cycle, if any. The first cycle waits for the threshold: a platform is only "new"
/// once a cycle has trained on others.
pub fn due(
    settings: &AutotrainSettings,
    change: &Change,
    last: Option<&CycleRecord>,
    now: i64,
) -> Option<Trigger> {
    if !settings.enabled || change.words == 0 {
        return None;
    }
    if change.words >= settings.min_words {
        return Some(Trigger::Threshold);
    }
    if !change.new_platforms.is_empty() {
        return Some(Trigger::Platform);
    }
    let last = last?;
    let every = i64::from(settings.every_days.max(1)) * 86_400;
    (now - last.started_at >= every).then_some(Trigger::Schedule)
}

/// How automation stands: its settings, the writing waiting, and the cycles running and last.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct AutotrainStatus {
    /// The user's settings.
    pub settings: AutotrainSettings,
    /// Writing no cycle has trained on yet.
    pub pending: Change,
    /// What would wake a cycle now, if anything.
    pub due: Option<Trigger>,
    /// The cycle running or interrupted (it resumes), if one is.
    pub unfinished: Option<Cycle>,
    /// Its training step and steps planned, while it trains.
    pub training_step: Option<(i64, i64)>,
    /// The newest finished cycle.
    pub last: Option<Cycle>,
}

/// Where automation stands in `store` at `now`.
pub fn status(store: &Store, now: i64) -> Result<AutotrainStatus, StoreError> {
    let settings = AutotrainSettings::load(store)?;
    let pending = pending_change(store)?;
    let cycles = store.cycles(20)?;
    let unfinished = store.unfinished_cycle()?;
    let last = cycles
        .iter()
        .find(|c| !matches!(c.status, RunStatus::Running | RunStatus::Cancelled));
    let training_step = match &unfinished {
        Some(c) if c.phase == "train" => store
            .runs(50)?
            .into_iter()
            .find(|r| Some(&r.dataset_id) == c.dataset_id.as_ref() && r.created_at >= c.started_at)
            .map(|r| (r.step, r.total_steps)),
        _ => None,
    };
    Ok(AutotrainStatus {
        due: due(&settings, &pending, cycles.first(), now),
        settings,
        pending,
        unfinished,
        training_step,
        last: last.cloned(),
    })
}

#[cfg(test)]
mod tests;
