//! The user's choices for automatic retraining, kept in the store.

use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

const ENABLED: &str = "autotrain.enabled";
const MIN_WORDS: &str = "autotrain.min_words";
const EVERY_DAYS: &str = "autotrain.every_days";
const MARGIN: &str = "autotrain.margin";
const DRAFTS: &str = "autotrain.drafts";
const MAX_STEPS: &str = "autotrain.max_steps";
const PREFERENCE: &str = "autotrain.preference";

/// Whether candidates train with the preference term unless the user chose: see the note on
/// `twin bench preference` in the README for the measurement this rests on.
pub const PREFERENCE_BY_DEFAULT: bool = false;

/// When cycles run and what a candidate must show.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct AutotrainSettings {
    /// Whether cycles start by themselves (on by default; `twin autotrain disable` or the
    /// app's switch turns them off).
    pub enabled: bool,
    /// New or edited words of the user's writing that wake a cycle.
    pub min_words: usize,
    /// Days after the last cycle that wake one anyway, if anything changed.
    pub every_days: u32,
    /// How much lower the candidate's held-out loss must be (0.02: 2%).
    pub margin: f64,
    /// Drafts on held-out topics per side, for style and "sounds like you".
    pub drafts: usize,
    /// Optimizer steps at most per candidate (None: the training defaults).
    pub max_steps: Option<usize>,
    /// Whether candidates train with the preference term (LN-DPO by default) on the user's
    /// passages over the base model's drafts and on the user's edits (see
    /// `train::preferences`).
    pub preference: bool,
}

impl Default for AutotrainSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_words: 2_000,
            every_days: 7,
            margin: 0.02,
            drafts: 4,
            max_steps: None,
            preference: PREFERENCE_BY_DEFAULT,
        }
    }
}

impl AutotrainSettings {
    /// The settings in `store`, defaults where none are stored (or a stored one is unreadable).
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let d = Self::default();
        let get = |key: &str| store.setting(key);
        Ok(Self {
            enabled: get(ENABLED)?.map_or(d.enabled, |v| v != "false"),
            min_words: parsed(get(MIN_WORDS)?).unwrap_or(d.min_words),
            every_days: parsed(get(EVERY_DAYS)?).unwrap_or(d.every_days),
            margin: parsed(get(MARGIN)?)
                .filter(|m: &f64| m.is_finite() && *m >= 0.0)
                .unwrap_or(d.margin),
            drafts: parsed(get(DRAFTS)?).unwrap_or(d.drafts),
            max_steps: parsed(get(MAX_STEPS)?).filter(|s| *s > 0),
            preference: get(PREFERENCE)?.map_or(d.preference, |v| v == "true"),
        })
    }

    /// Keep these settings in `store`.
    pub fn save(&self, store: &Store) -> Result<(), StoreError> {
        store.set_setting(ENABLED, &self.enabled.to_string())?;
        store.set_setting(MIN_WORDS, &self.min_words.max(1).to_string())?;
        store.set_setting(EVERY_DAYS, &self.every_days.max(1).to_string())?;
        store.set_setting(MARGIN, &self.margin.to_string())?;
        store.set_setting(DRAFTS, &self.drafts.to_string())?;
        store.set_setting(PREFERENCE, &self.preference.to_string())?;
        match self.max_steps {
            Some(s) => store.set_setting(MAX_STEPS, &s.to_string()),
            None => store.delete_setting(MAX_STEPS),
        }
    }
}

fn parsed<T: std::str::FromStr>(value: Option<String>) -> Option<T> {
    value.and_then(|v| v.trim().parse().ok())
}
