//! Progress reporting and cancellation: one mechanism shared by import, embedding and, later,
//! training and evaluation, so every shell (CLI bars, UI events) plugs in the same way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cheap, clonable flag that long work polls between units of work.
///
/// Cancellation is cooperative: work stops at the next safe point (between files, between
/// embedding batches), so everything already committed stays consistent.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that has not been cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the work holding a clone of this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// The flag itself, for llama.cpp's abort callback (see `engine::ffi`).
    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.0
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Whether `other` is a clone of this token (the same flag), not merely an equal one.
    pub fn same_as(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The step of a long job that a progress event refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum Stage {
    /// Walking folders to find candidate files.
    Scan,
    /// Reading, parsing, cleaning and chunking files.
    Parse,
    /// Computing embeddings for stored chunks.
    Embed,
    /// Downloading a model (units are bytes).
    Download,
    /// Building a training dataset (units are passages).
    Dataset,
    /// Evaluating (units are measurements; `item` names the step).
    Evaluate,
    /// Writing or reading a twin bundle (units are bytes; `item` names the file).
    Bundle,
}

/// One progress update: `done` of `total` units of `stage` finished.
#[derive(Clone, Debug, serde::Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ProgressEvent {
    /// Which step is running.
    pub stage: Stage,
    /// Units finished so far.
    pub done: u64,
    /// Units expected in all (0 while unknown).
    pub total: u64,
    /// The item just processed, e.g. a file path, for display.
    pub item: Option<String>,
}

/// Receives progress events. Implementations must be cheap: they are called per file and per batch.
pub trait Progress: Send + Sync {
    /// Called whenever a unit of work finishes or a stage starts.
    fn report(&self, event: ProgressEvent);
}

/// A progress sink that ignores every event, for callers with nothing to show.
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _event: ProgressEvent) {}
}

impl<F: Fn(ProgressEvent) + Send + Sync> Progress for F {
    fn report(&self, event: ProgressEvent) {
        self(event)
    }
}
