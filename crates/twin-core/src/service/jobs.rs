//! Long jobs by kind, each with the token that cancels it.

use crate::progress::CancelToken;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// The long jobs a shell can start and cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(ts_rs::TS)]
#[ts(export)]
pub enum JobKind {
    /// Importing files and folders.
    Import,
    /// Preparing a draft while its topic is typed.
    Prepare,
    /// Drafting.
    Draft,
    /// Building a training dataset.
    Dataset,
    /// Training an adapter.
    Train,
    /// Downloading a model.
    Pull,
    /// Evaluating.
    Eval,
    /// A training cycle run on request (cycles started by themselves stop with the follower).
    Autotrain,
    /// Exporting or importing a twin bundle.
    Bundle,
}

/// The running jobs: one per kind (a newer job of a kind replaces the older one's entry, and
/// both stay cancellable through their own tokens).
#[derive(Default)]
pub(super) struct Jobs(Mutex<HashMap<JobKind, CancelToken>>);

impl Jobs {
    /// Register a new job of `kind`; its token.
    pub(super) fn start(&self, kind: JobKind) -> CancelToken {
        let token = CancelToken::new();
        if let Ok(mut jobs) = self.0.lock() {
            jobs.insert(kind, token.clone());
        }
        token
    }

    /// Forget the job of `kind` if `token` is still its token: a newer job of the same kind may
    /// have replaced it, and must stay cancellable.
    pub(super) fn end(&self, kind: JobKind, token: &CancelToken) {
        if let Ok(mut jobs) = self.0.lock() {
            if jobs.get(&kind).is_some_and(|t| t.same_as(token)) {
                jobs.remove(&kind);
            }
        }
    }

    /// Cancel the job of `kind` if one is running; whether one was.
    pub(super) fn cancel(&self, kind: JobKind) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|jobs| jobs.get(&kind).cloned())
            .map(|t| t.cancel())
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_job_ending_leaves_the_newer_one_cancellable() {
        let jobs = Jobs::default();
        let old = jobs.start(JobKind::Draft);
        let new = jobs.start(JobKind::Draft);
        jobs.end(JobKind::Draft, &old);
        assert!(jobs.cancel(JobKind::Draft));
        assert!(new.is_cancelled() && !old.is_cancelled());
        jobs.end(JobKind::Draft, &new);
        assert!(!jobs.cancel(JobKind::Draft));
        assert_eq!(
            serde_json::from_str::<JobKind>("\"dataset\"").unwrap(),
            JobKind::Dataset
        );
    }
}
