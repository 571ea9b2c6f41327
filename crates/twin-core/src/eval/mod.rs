//! Evaluation: how much Twin sounds like the user, and whether it finds the right writing.
//!
//! A run measures, on the held-out split of a training dataset (documents no adapter saw):
//! - held-out perplexity under llama.cpp, base model against each adapter (`nll` items);
//! - drafts on held-out topics, base + retrieval and adapter + retrieval, with the held-out
//!   documents kept out of the context (`draft` items); their style distance to the held-out
//!   writing (`style`), the "sounds like you" probability (`authorship`), and a local judge's
//!   1–3 scores for accuracy and style (`judge` items);
//! - retrieval recall@k and MRR for queries written from held-out passages (`retrieval`).
//!
//! Only raw measurements are stored (`eval_items`). [`Summary::load`] computes every number
//! of a report from those rows each time, so a report can be re-derived, checked and compared.
//! A cancelled or crashed run resumes: the same dataset, models and parameters find the run
//! and skip what it already measured.

pub mod authorship;
mod measure;
pub mod report;
pub mod style;
mod summary;

use measure::{measure_all, Measure};
pub use summary::{
    AuthorshipRow, DraftRow, HealthRow, JudgeRow, PerplexityRow, RetrievalRow, StyleRow, Summary,
};

use crate::draft::{self, DraftError, DraftRequest};
use crate::engine::{ChatModel, ChatModelConfig, Sampling};
use crate::library::{Library, LibraryError};
use crate::models::{self, ModelError};
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use crate::prompt::grammar::{judge_grammar, Judgement};
use crate::prompt::templates::Templates;
use crate::search::{SearchMode, SearchQuery};
use crate::store::{
    AdapterRecord, EvalItem, EvalItemKind, EvalRunId, EvalRunRecord, ExampleKind, ModelRecord,
    RunStatus, Split, StoreError,
};
use crate::train::{Dataset, TrainError};
use authorship::AuthorshipModel;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use style::{DeltaBasis, StyleDistance, StyleProfile};

/// Errors from evaluation; each names what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The library failed (search, embedding).
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// A model could not be found or loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The dataset could not be read.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Drafting failed.
    #[error(transparent)]
    Draft(#[from] DraftError),
    /// The judge's prompt or answer failed.
    #[error(transparent)]
    Prompt(#[from] crate::prompt::PromptError),
    /// llama.cpp failed while scoring.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// Nothing to evaluate on.
    #[error("dataset {0} has no held-out examples of the user's writing")]
    NoHeldOut(String),
    /// No such run.
    #[error("no evaluation run {0}")]
    NoRun(EvalRunId),
    /// Writing the report failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Cancelled; what was measured is kept and a re-run resumes.
    #[error("cancelled")]
    Cancelled,
}

crate::error::classify!(EvalError {
    kind: Self::Cancelled => Cancelled, Self::NoHeldOut(_) => NeedsSetup, Self::NoRun(_) => NotFound,
        Self::Io { .. } => Io;
    inner: Store, Library, Model, Train, Draft, Prompt, Engine;
    path: Self::Io { path, .. } => path.as_path();
});

/// The context window evaluation loads its models with: a held-out passage with its prompt, a
/// grounded draft and the judge's prompt all fit.
pub const CONTEXT_TOKENS: u32 = 4096;

/// What to evaluate and how much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct EvalParams {
    /// Dataset id (a unique prefix); the newest by default.
    pub dataset: Option<String>,
    /// Adapters (id or name) to draft with; by default the one in use, else the newest trained
    /// on this base. Perplexity covers every adapter of the base regardless.
    pub adapters: Vec<String>,
    /// Held-out topics drafted per configuration.
    pub drafts: usize,
    /// Retrieval queries at most.
    pub queries: usize,
    /// Run the local judge.
    pub judge: bool,
    /// Judge model (id, name or path); by default the largest registered chat model.
    pub judge_model: Option<String>,
    /// Seed of the drafts' sampling.
    pub seed: u32,
    /// Author's name as the prompts use it.
    pub author: String,
    /// Measure only the base model and the adapters named in `adapters` (automatic
    /// retraining's comparison of a candidate with the adapter in use). By default every
    /// adapter of the base gets a perplexity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional = nullable)]
    pub named_only: Option<bool>,
    /// Draft with the base model too (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional = nullable)]
    pub base_drafts: Option<bool>,
}

impl Default for EvalParams {
    fn default() -> Self {
        Self {
            dataset: None,
            adapters: Vec::new(),
            drafts: 6,
            queries: 40,
            judge: true,
            judge_model: None,
            seed: 0x7717,
            author: "the author".into(),
            named_only: None,
            base_drafts: None,
        }
    }
}

/// What [`run`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EvalOutcome {
    /// The run (see [`Summary::load`]).
    pub run: EvalRunId,
    /// Whether an interrupted run with the same settings was resumed.
    pub resumed: bool,
}

/// A configuration measured in a run: `base` or `adapter:<id>`, with a readable label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct Config {
    /// `base` or `adapter:<id>`.
    pub config: String,
    /// For people: the model or adapter name.
    pub label: String,
    /// The adapter file (none for the base).
    pub adapter_path: Option<String>,
    /// Whether drafts are made with it (perplexity covers all).
    pub drafts: bool,
}

fn adapter_config(a: &AdapterRecord, drafts: bool) -> Config {
    Config {
        config: format!("adapter:{}", a.id),
        label: format!("{} (#{})", a.name, a.id),
        adapter_path: Some(a.path.clone()),
        drafts,
    }
}

/// What a run was asked to do, stored with it (the report reads labels and settings here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[ts(export)]
pub struct RunSettings {
    /// The parameters.
    pub params: EvalParams,
    /// The base model's name.
    pub base_name: String,
    /// The judge model's name (when judged).
    pub judge_name: Option<String>,
    /// Why no judge ran although one was asked for ("no independent judge: …").
    #[serde(default)]
    pub judge_note: Option<String>,
    /// Configurations in report order (base first).
    pub configs: Vec<Config>,
}

/// Run an evaluation with the chat model `base` on `library`. Resumes an unfinished run with
/// the same settings. Returns the run; [`Summary::load`] turns it into a report.
pub fn run(
    library: &mut Library,
    base: &ModelRecord,
    model_config: &ChatModelConfig,
    params: &EvalParams,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<EvalOutcome, EvalError> {
    let _span = tracing::info_span!("eval").entered();
    if params.drafts > 200 || params.queries > 10_000 {
        return Err(EvalError::Train(TrainError::Data(format!(
            "{} drafts and {} queries per configuration is more than an evaluation needs (at most 200 and 10,000)",
            params.drafts, params.queries
        ))));
    }
    let dataset = Dataset::load(library.store(), params.dataset.as_deref())?;
    dataset.check_base(base)?;
    let heldout: Vec<(usize, &crate::train::dataset::Example)> = dataset
        .examples
        .iter()
        .enumerate()
        .filter(|(_, e)| e.split == Split::Test && e.kind == ExampleKind::User)
        .collect();
    if heldout.is_empty() {
        return Err(EvalError::NoHeldOut(dataset.record.id.clone()));
    }
    let configs = configs_for(library, base, params)?;
    let candidate = match (&params.judge_model, params.judge) {
        (_, false) => None,
        (Some(q), true) => Some(models::resolve_chat_model(library.store(), Some(q))?),
        (None, true) => models::strongest_chat_model(library.store())?,
    };
    let (judge, judge_note) = choose_judge(candidate, base, params.judge_model.is_some());
    let settings = RunSettings {
        params: params.clone(),
        base_name: base.name.clone(),
        judge_note,
        judge_name: judge.as_ref().map(|j| j.name.clone()),
        configs: configs.clone(),
    };
    let settings_json = serde_json::to_value(&settings).unwrap_or_default();
    let run_key =
        blake3::hash(format!("{}|{}|{settings_json}", dataset.record.id, base.sha256).as_bytes())
            .to_hex()[..16]
            .to_string();
    let store = library.store();
    let (run_id, resumed) = match store.resumable_eval_run(&run_key)? {
        Some(r) => {
            store.set_eval_status(r.id, RunStatus::Running, None)?;
            (r.id, true)
        }
        None => (
            store.put_eval_run(&EvalRunRecord {
                id: 0,
                run_key,
                status: RunStatus::Running,
                dataset_id: dataset.record.id.clone(),
                base_sha256: base.sha256.clone(),
                params: settings_json,
                error: None,
                created_at: 0,
                updated_at: 0,
            })?,
            false,
        ),
    };
    let mut measure = Measure {
        run: run_id,
        done: store
            .eval_items(run_id)?
            .into_iter()
            .map(|i| (i.kind, i.config, i.key))
            .collect(),
        cancel,
        progress,
    };
    let result = measure_all(
        library,
        base,
        model_config,
        params,
        &dataset,
        &heldout,
        &configs,
        judge.as_ref(),
        &mut measure,
    );
    let store = library.store();
    match &result {
        Ok(()) => store.set_eval_status(run_id, RunStatus::Done, None)?,
        Err(EvalError::Cancelled) => store.set_eval_status(run_id, RunStatus::Cancelled, None)?,
        Err(e) => store.set_eval_status(run_id, RunStatus::Failed, Some(&e.to_string()))?,
    }
    result.map(|()| EvalOutcome {
        run: run_id,
        resumed,
    })
}

/// Area under the ROC curve of scores for `positive` against `negative` texts: the share of
/// (positive, negative) pairs the scores order rightly, ties counting half. `None` when either
/// side is empty.
pub fn auc(positive: &[f64], negative: &[f64]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    let mut right = 0.0;
    for p in positive {
        for n in negative {
            right += match p.total_cmp(n) {
                std::cmp::Ordering::Greater => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Less => 0.0,
            };
        }
    }
    Some(right / (positive.len() * negative.len()) as f64)
}

/// The judge to use, or why there is none. A model grading its own drafts, or a smaller one
/// grading a larger one's, measures nothing: the default judge is a registered chat model
/// larger than the base, else the report says "no independent judge" instead of a score. A
/// judge the user named explicitly is used, with a note when it is the judged model itself.
fn choose_judge(
    candidate: Option<ModelRecord>,
    base: &ModelRecord,
    explicit: bool,
) -> (Option<ModelRecord>, Option<String>) {
    match candidate {
        Some(j) if explicit && j.sha256 == base.sha256 => (
            Some(j),
            Some("the judge is the model being judged: its scores are not independent".into()),
        ),
        Some(j) if explicit || (j.sha256 != base.sha256 && j.size > base.size) => (Some(j), None),
        Some(_) => (
            None,
            Some(format!(
                "no independent judge: no registered chat model is larger than {} (add one with \
                 `twin models pull` or `twin models add` for accuracy and style scores)",
                base.name
            )),
        ),
        None => (None, None),
    }
}

/// Base first, then every adapter of this base; drafts with the chosen ones.
fn configs_for(
    library: &Library,
    base: &ModelRecord,
    params: &EvalParams,
) -> Result<Vec<Config>, EvalError> {
    let store = library.store();
    let named_only = params.named_only.unwrap_or(false);
    let mut adapters: Vec<AdapterRecord> = store
        .adapters()?
        .into_iter()
        .filter(|a| {
            !named_only && a.base_sha256 == base.sha256 && std::path::Path::new(&a.path).is_file()
        })
        .collect();
    adapters.sort_by_key(|a| a.id);
    let mut drafting: HashSet<i64> = HashSet::new();
    for q in &params.adapters {
        let a = crate::train::adapters::find(store, q)
            .map_err(|e| EvalError::Train(TrainError::Data(format!("adapter {q:?}: {e}"))))?;
        crate::train::adapters::check(&a, &base.sha256, &base.name)
            .map_err(|e| EvalError::Train(TrainError::Data(e.to_string())))?;
        if !adapters.iter().any(|x| x.id == a.id) {
            adapters.push(a.clone());
        }
        drafting.insert(a.id);
    }
    if params.adapters.is_empty() {
        let active = store
            .active_adapter(crate::train::adapters::DEFAULT_CHANNEL)?
            .and_then(|a| a.adapter)
            .filter(|a| a.base_sha256 == base.sha256);
        if let Some(a) = active.or_else(|| adapters.last().cloned()) {
            drafting.insert(a.id);
        }
    }
    let mut configs = vec![Config {
        config: "base".into(),
        label: format!("{} (base)", base.name),
        adapter_path: None,
        drafts: params.base_drafts.unwrap_or(true),
    }];
    configs.extend(
        adapters
            .iter()
            .map(|a| adapter_config(a, drafting.contains(&a.id))),
    );
    Ok(configs)
}

/// The text of a stored draft or held-out item.
fn text_of(item: &EvalItem) -> String {
    item.detail["text"].as_str().unwrap_or_default().to_string()
}

/// Write `summary` as `eval-<id>.json` and `eval-<id>.html` into `dir`; returns both paths.
pub fn write_report(
    summary: &Summary,
    dir: &std::path::Path,
) -> Result<(PathBuf, PathBuf), EvalError> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| EvalError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let json_path = dir.join(format!("eval-{}.json", summary.run.id));
    let html_path = dir.join(format!("eval-{}.html", summary.run.id));
    let json = serde_json::to_string_pretty(summary).unwrap_or_default();
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    std::fs::write(&html_path, report::html(summary)).map_err(io(&html_path))?;
    Ok((json_path, html_path))
}

/// The "sounds like you" classifier for a library: the user's original documents against the
/// shipped reference writing. `None` for an empty library. Used per draft by the shells.
pub fn authorship_model(store: &crate::store::Store) -> Result<Option<AuthorshipModel>, EvalError> {
    // The newest dataset's machine negatives, when there is one (see `machine_negatives`).
    let dataset = match Dataset::load(store, None) {
        Ok(d) => Some(d),
        Err(TrainError::NoDataset) => None,
        Err(e) => return Err(e.into()),
    };
    let mut others = authorship::reference_passages();
    if let Some(d) = &dataset {
        others.extend(machine_negatives(d).map(str::to_string));
    }
    let mut texts = Vec::new();
    // Bounded: a few hundred passages are plenty, and a huge library should not stall a draft.
    for id in store.original_document_ids()?.into_iter().take(400) {
        for c in store.chunks_of(id)?.into_iter().take(4) {
            texts.push(c.text);
        }
    }
    Ok(AuthorshipModel::fit(&texts, &others))
}

/// The base model's drafts a dataset keeps as "sounds like you" negatives.
fn machine_negatives(dataset: &Dataset) -> impl Iterator<Item = &str> {
    dataset.split(Split::Negative).map(|e| e.reply.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, sha256: &str, size: u64) -> ModelRecord {
        ModelRecord {
            id: 0,
            name: name.into(),
            path: String::new(),
            kind: "chat".into(),
            origin: "added".into(),
            architecture: None,
            sha256: sha256.into(),
            size,
            mtime: 0,
            added_at: 0,
        }
    }

    #[test]
    fn auc_counts_rightly_ordered_pairs() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auc(&[0.1], &[0.9]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.9], &[0.5]), Some(0.75));
        assert_eq!(auc(&[], &[0.5]), None);
    }

    #[test]
    fn a_model_never_grades_itself_by_default() {
        let base = model("small", "aa", 100);
        let (judge, note) = choose_judge(Some(base.clone()), &base, false);
        assert!(judge.is_none());
        assert!(note.unwrap().starts_with("no independent judge"));
        let (judge, note) = choose_judge(Some(model("smaller", "bb", 50)), &base, false);
        assert!(judge.is_none() && note.is_some());
        let (judge, note) = choose_judge(Some(model("large", "cc", 900)), &base, false);
        assert_eq!(judge.unwrap().name, "large");
        assert!(note.is_none());
        // Named by the user: used, and marked when it is the judged model itself.
        let (judge, note) = choose_judge(Some(base.clone()), &base, true);
        assert!(judge.is_some() && note.unwrap().contains("not independent"));
        assert_eq!(choose_judge(None, &base, false), (None, None));
    }
}
