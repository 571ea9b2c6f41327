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
pub mod report;
pub mod style;

use crate::draft::{self, DraftError, DraftRequest};
use crate::engine::{ChatModel, ChatModelConfig, Sampling};
use crate::library::{Library, LibraryError};
use crate::models::{self, ModelError};
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use crate::prompt::grammar::{judge_grammar, Judgement};
use crate::prompt::templates::Templates;
use crate::search::{SearchMode, SearchQuery};
use crate::store::{AdapterRecord, EvalItem, EvalRunId, EvalRunRecord, ModelRecord, StoreError};
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

/// What to evaluate and how much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        .filter(|(_, e)| e.split == "test" && e.kind == "user")
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
            store.set_eval_status(r.id, "running", None)?;
            (r.id, true)
        }
        None => (
            store.put_eval_run(&EvalRunRecord {
                id: 0,
                run_key,
                status: "running".into(),
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
        Ok(()) => store.set_eval_status(run_id, "done", None)?,
        Err(EvalError::Cancelled) => store.set_eval_status(run_id, "cancelled", None)?,
        Err(e) => store.set_eval_status(run_id, "failed", Some(&e.to_string()))?,
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
    let mut adapters: Vec<AdapterRecord> = store
        .adapters()?
        .into_iter()
        .filter(|a| a.base_sha256 == base.sha256 && std::path::Path::new(&a.path).is_file())
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
        drafts: true,
    }];
    configs.extend(
        adapters
            .iter()
            .map(|a| adapter_config(a, drafting.contains(&a.id))),
    );
    Ok(configs)
}

/// Bookkeeping of a run in progress: what is measured, cancellation, events.
struct Measure<'a> {
    run: EvalRunId,
    done: HashSet<(String, String, String)>,
    cancel: &'a CancelToken,
    progress: &'a dyn Progress,
}

impl Measure<'_> {
    fn has(&self, kind: &str, config: &str, key: &str) -> bool {
        self.done
            .contains(&(kind.to_string(), config.to_string(), key.to_string()))
    }

    /// Measurements of `kind` stored so far (progress is derived from these).
    fn count(&self, kind: &str) -> usize {
        self.done.iter().filter(|(k, _, _)| k == kind).count()
    }

    fn check(&self) -> Result<(), EvalError> {
        if self.cancel.is_cancelled() {
            Err(EvalError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn put(&mut self, library: &Library, item: EvalItem) -> Result<(), EvalError> {
        library.store().put_eval_item(self.run, &item)?;
        self.done.insert((item.kind, item.config, item.key));
        Ok(())
    }

    fn progress(&self, step: &str, done: usize, total: usize) {
        self.progress.report(ProgressEvent {
            stage: Stage::Evaluate,
            done: done as u64,
            total: total as u64,
            item: Some(step.to_string()),
        });
    }
}

fn load_model(
    base: &ModelRecord,
    model_config: &ChatModelConfig,
    adapter: Option<&String>,
) -> Result<ChatModel, EvalError> {
    let config = ChatModelConfig {
        adapter: adapter.map(PathBuf::from),
        ..model_config.clone()
    };
    Ok(models::load_chat_model(base, &config)?)
}

#[allow(clippy::too_many_arguments)]
fn measure_all(
    library: &mut Library,
    base: &ModelRecord,
    model_config: &ChatModelConfig,
    params: &EvalParams,
    dataset: &Dataset,
    heldout: &[(usize, &crate::train::dataset::Example)],
    configs: &[Config],
    judge: Option<&ModelRecord>,
    m: &mut Measure,
) -> Result<(), EvalError> {
    // The held-out writing itself: the style reference, stored so reports need nothing else.
    for (idx, e) in heldout {
        let key = idx.to_string();
        if !m.has("heldout", "user", &key) {
            let (format, topic) = e.request().unzip();
            m.put(
                library,
                EvalItem {
                    kind: "heldout".into(),
                    config: "user".into(),
                    key,
                    value: style::words(&e.reply).len() as f64,
                    detail: serde_json::json!({
                        "text": e.reply,
                        "document": e.document_path,
                        "topic": topic,
                        "format": format.map(|f| f.platform()),
                    }),
                },
            )?;
        }
    }

    // Retrieval needs no chat model.
    measure_retrieval(library, heldout, params, m)?;

    // One model load per configuration: held-out perplexity, drafts on held-out topics (with
    // the held-out documents out of reach), and, when the judge is the base model itself, the
    // judging (structured steps run at adapter scale 0, i.e. on the base weights).
    let excluded: Vec<String> = heldout
        .iter()
        .filter_map(|(_, e)| e.document_path.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Eval topics come only from real requests: a passage whose request fell back to its
    // document's title is scored for perplexity but never drafted.
    let store = library.store();
    let titles: HashMap<String, String> = excluded
        .iter()
        .filter_map(|path| {
            let id = store.document_id_by_path(Path::new(path)).ok()??;
            Some((path.clone(), store.document(id).ok()??.title))
        })
        .collect();
    let topics = draft_topics(heldout, &titles, params.drafts);
    let templates = Templates::load(Some(&library.data_dir().join("templates")))?;
    let judge_is_base = judge.is_some_and(|j| j.sha256 == base.sha256);
    let nll_total = heldout.len() * configs.len();
    let draft_total = topics.len() * configs.iter().filter(|c| c.drafts).count();
    for c in configs {
        let nll_todo: Vec<_> = heldout
            .iter()
            .filter(|(idx, _)| !m.has("nll", &c.config, &idx.to_string()))
            .collect();
        let draft_todo: Vec<_> = topics
            .iter()
            .filter(|t| c.drafts && !m.has("draft", &c.config, &t.0.to_string()))
            .collect();
        let judge_todo = judge_is_base
            && topics
                .iter()
                .any(|t| c.drafts && !m.has("judge", &c.config, &t.0.to_string()));
        if nll_todo.is_empty() && draft_todo.is_empty() && !judge_todo {
            continue;
        }
        let model = load_model(base, model_config, c.adapter_path.as_ref())?;
        let scale = if c.adapter_path.is_some() { 1.0 } else { 0.0 };
        for (idx, e) in nll_todo {
            m.check()?;
            let enc = model.encode_example(&e.messages, &e.reply)?;
            let scored = model.score(&enc.tokens, enc.prompt_len, scale, m.cancel)?;
            let sum: f64 = scored.nll.iter().map(|&v| f64::from(v)).sum();
            m.put(
                library,
                EvalItem {
                    kind: "nll".into(),
                    config: c.config.clone(),
                    key: idx.to_string(),
                    value: sum,
                    detail: serde_json::json!({ "tokens": scored.nll.len() }),
                },
            )?;
            m.progress("perplexity", m.count("nll"), nll_total);
        }
        for (idx, format, topic) in draft_todo {
            m.check()?;
            let defaults = DraftRequest::new(topic.clone(), *format);
            let request = DraftRequest {
                draft_only: true,
                expansions: 0,
                self_query: false,
                // The sampling drafts get (DRY included), with the run's seed.
                sampling: Sampling {
                    seed: params.seed,
                    ..defaults.sampling.clone()
                },
                adapter_scale: scale,
                author: params.author.clone(),
                exclude_documents: excluded.clone(),
                ..defaults
            };
            let d = draft::draft(library, &model, &request, m.cancel, &mut |_| {}).map_err(
                |e| match e {
                    DraftError::Cancelled => EvalError::Cancelled,
                    e => EvalError::Draft(e),
                },
            )?;
            m.put(
                library,
                EvalItem {
                    kind: "draft".into(),
                    config: c.config.clone(),
                    key: idx.to_string(),
                    value: d.words as f64,
                    detail: serde_json::json!({
                        "topic": topic,
                        "format": format.platform(),
                        "text": d.text,
                        "chunks": d.citations.iter().map(|c| c.chunk_id).collect::<Vec<_>>(),
                        "trace": d.trace_id,
                        "publishable": d.health.publishable,
                        "failed": d.health.failures().map(|c| c.name.clone()).collect::<Vec<_>>(),
                    }),
                },
            )?;
            m.progress("drafts", m.count("draft"), draft_total);
        }
        if let Some(judge) = judge.filter(|_| judge_is_base) {
            let drafts = stored_drafts(library, m.run, Some(&c.config))?;
            let job = Judging {
                model: &model,
                name: &judge.name,
                templates: &templates,
                total: draft_total,
            };
            judge_drafts(library, &job, &drafts, heldout, params, m)?;
        }
    }

    // "Sounds like you": fitted on the training split against other people's writing;
    // every fifth reference passage is kept back to show how it treats writers it never saw.
    let drafts = stored_drafts(library, m.run, None)?;
    let references = authorship::reference_passages();
    let (others_train, others_test): (Vec<_>, Vec<_>) =
        references.iter().enumerate().partition(|(i, _)| i % 5 != 4);
    let user_train: Vec<&str> = dataset
        .split("train")
        .filter(|e| e.kind == "user")
        .map(|e| e.reply.as_str())
        .collect();
    // Other people's writing, and the base model's own drafts on training requests: machine
    // text on the user's topics is what a twin's drafts must be told apart from.
    let others_train: Vec<&str> = others_train
        .iter()
        .map(|(_, t)| t.as_str())
        .chain(machine_negatives(dataset))
        .collect();
    if let Some(classifier) = AuthorshipModel::fit(&user_train, &others_train) {
        let mut scored: Vec<(String, String, String)> = Vec::new();
        for d in &drafts {
            scored.push((d.config.clone(), d.key.clone(), text_of(d)));
        }
        for (idx, e) in heldout {
            scored.push(("heldout".into(), idx.to_string(), e.reply.clone()));
        }
        for (i, t) in &others_test {
            scored.push(("others".into(), i.to_string(), t.to_string()));
        }
        for (config, key, text) in scored {
            if !m.has("authorship", &config, &key) {
                m.put(
                    library,
                    EvalItem {
                        kind: "authorship".into(),
                        config,
                        key,
                        value: classifier.probability(&text),
                        detail: serde_json::to_value(&classifier.fit).unwrap_or_default(),
                    },
                )?;
            }
        }
    }

    // The local judge, when it is another model: loaded once for every draft.
    if let Some(judge) = judge.filter(|_| !judge_is_base) {
        if drafts.iter().any(|d| !m.has("judge", &d.config, &d.key)) {
            let model = models::load_chat_model(judge, model_config)?;
            let job = Judging {
                model: &model,
                name: &judge.name,
                templates: &templates,
                total: drafts.len(),
            };
            judge_drafts(library, &job, &drafts, heldout, params, m)?;
        }
    }
    Ok(())
}

/// Recall of the queries written from held-out passages: each must find its own document.
fn measure_retrieval(
    library: &mut Library,
    heldout: &[(usize, &crate::train::dataset::Example)],
    params: &EvalParams,
    m: &mut Measure,
) -> Result<(), EvalError> {
    let queries: Vec<(usize, String, String)> = heldout
        .iter()
        .filter_map(|(idx, e)| {
            let (_, topic) = e.request()?;
            Some((*idx, topic, e.document_path.clone()?))
        })
        .take(params.queries)
        .collect();
    let modes = [
        ("hybrid", SearchMode::Hybrid),
        ("bm25", SearchMode::Bm25),
        ("vector", SearchMode::Vector),
    ];
    let total = queries.len() * modes.len();
    for (name, mode) in modes {
        for (idx, topic, document) in &queries {
            if m.has("retrieval", name, &idx.to_string()) {
                continue;
            }
            m.check()?;
            let mut query = SearchQuery::new(topic.clone(), RETRIEVAL_DEPTH);
            query.mode = mode;
            let results = library.search(&query)?;
            let mut documents: Vec<String> = Vec::new();
            for r in &results {
                let p = r.hit.path.display().to_string();
                if !documents.contains(&p) {
                    documents.push(p);
                }
            }
            let rank = documents
                .iter()
                .position(|d| d == document)
                .map_or(0, |r| r + 1);
            let title = library
                .store()
                .chunk_hits(&results.iter().map(|r| r.hit.chunk_id).collect::<Vec<_>>())?
                .into_iter()
                .find(|h| h.path.display().to_string() == *document)
                .map(|h| h.title);
            m.put(
                library,
                EvalItem {
                    kind: "retrieval".into(),
                    config: name.into(),
                    key: idx.to_string(),
                    value: rank as f64,
                    detail: serde_json::json!({
                        "query": topic,
                        "document": document,
                        // Back-translation falls back to the title when the model fails; such
                        // queries are easy for BM25, so the report counts them apart.
                        "from_title": title.is_some_and(|t| topic.to_lowercase().contains(&t.to_lowercase())),
                        "top": documents.iter().take(3).collect::<Vec<_>>(),
                    }),
                },
            )?;
            m.progress("retrieval", m.count("retrieval"), total);
        }
    }
    Ok(())
}

/// The stored drafts of the run (of one configuration, or all).
fn stored_drafts(
    library: &Library,
    run: EvalRunId,
    config: Option<&str>,
) -> Result<Vec<EvalItem>, EvalError> {
    Ok(library
        .store()
        .eval_items(run)?
        .into_iter()
        .filter(|i| i.kind == "draft" && config.is_none_or(|c| i.config == c))
        .collect())
}

/// The judge model and what its progress counts against.
struct Judging<'a> {
    model: &'a ChatModel,
    name: &'a str,
    templates: &'a Templates,
    total: usize,
}

/// Judge the `drafts` not judged yet: accuracy against each draft's context, style against
/// the held-out passage its topic came from.
fn judge_drafts(
    library: &Library,
    job: &Judging,
    drafts: &[EvalItem],
    heldout: &[(usize, &crate::train::dataset::Example)],
    params: &EvalParams,
    m: &mut Measure,
) -> Result<(), EvalError> {
    let version = job
        .templates
        .describe("judge")
        .map(|t| t.version.clone())
        .unwrap_or_default();
    for d in drafts {
        if m.has("judge", &d.config, &d.key) {
            continue;
        }
        m.check()?;
        let chunk_ids: Vec<i64> = d.detail["chunks"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default();
        let context: Vec<String> = library
            .store()
            .chunk_hits(&chunk_ids)?
            .into_iter()
            .map(|h| excerpt(&h.text, 80))
            .collect();
        let reference = heldout
            .iter()
            .find(|(idx, _)| idx.to_string() == d.key)
            .map(|(_, e)| excerpt(&e.reply, 150))
            .unwrap_or_default();
        let verdict: Judgement = crate::prompt::structured::step(
            job.model,
            job.templates,
            "judge",
            "judge",
            minijinja::context! {
                author => params.author.as_str(),
                topic => d.detail["topic"].as_str().unwrap_or_default(),
                context => context,
                reference => reference,
                draft => excerpt(&text_of(d), 250),
            },
            judge_grammar(),
            24,
        )?;
        m.put(
            library,
            EvalItem {
                kind: "judge".into(),
                config: d.config.clone(),
                key: d.key.clone(),
                value: f64::from(verdict.accuracy + verdict.style) / 2.0,
                detail: serde_json::json!({
                    "accuracy": verdict.accuracy,
                    "style": verdict.style,
                    "judge": job.name,
                    "template": format!("judge v{version}"),
                }),
            },
        )?;
        m.progress("judge", m.count("judge"), job.total);
    }
    Ok(())
}

/// Results searched per retrieval query: recall is reported at 1, 5 and 10 documents.
const RETRIEVAL_DEPTH: usize = 30;

/// The first `n` words of `text` (the judge's context window is small).
fn excerpt(text: &str, n: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() <= n {
        words.join(" ")
    } else {
        format!("{} …", words[..n].join(" "))
    }
}

fn text_of(item: &EvalItem) -> String {
    item.detail["text"].as_str().unwrap_or_default().to_string()
}

/// Up to `n` held-out topics, one per document first; articles last (they take several
/// generation steps each).
fn draft_topics(
    heldout: &[(usize, &crate::train::dataset::Example)],
    titles: &HashMap<String, String>,
    n: usize,
) -> Vec<(usize, crate::draft::Format, String)> {
    let mut seen_docs = HashSet::new();
    let mut first: Vec<(usize, crate::draft::Format, String)> = Vec::new();
    let mut rest = Vec::new();
    for (idx, e) in heldout {
        let Some((format, topic)) = e.request() else {
            continue;
        };
        let title = e.document_path.as_ref().and_then(|p| titles.get(p));
        if title.is_some_and(|t| crate::train::dataset::is_title_request(&topic, t)) {
            continue;
        }
        if seen_docs.insert(e.document_path.clone()) {
            first.push((*idx, format, topic));
        } else {
            rest.push((*idx, format, topic));
        }
    }
    first.extend(rest);
    first.sort_by_key(|(_, f, _)| *f == crate::draft::Format::Article);
    first.truncate(n);
    first
}

/// Perplexity of one configuration over the held-out replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerplexityRow {
    /// `base` or `adapter:<id>`.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Examples scored.
    pub examples: usize,
    /// Tokens scored.
    pub tokens: usize,
    /// Mean negative log-likelihood per token (nats).
    pub nll: f64,
    /// exp(nll).
    pub perplexity: f64,
}

/// Style of one configuration's drafts against the user's held-out writing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StyleRow {
    /// `base`, `adapter:<id>`, or `others` (reference writing by other people).
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Texts compared.
    pub texts: usize,
    /// Words in them.
    pub words: usize,
    /// Mean sentence length (words).
    pub mean_sentence_length: f64,
    /// Moving-average type-token ratio.
    pub mattr: f64,
    /// Each component of the distance.
    pub distance: StyleDistance,
    /// Components relative to other people's distance, averaged (1 = as far as others).
    pub relative: f64,
}

/// "Sounds like you" probabilities of one group of texts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthorshipRow {
    /// `base`, `adapter:<id>`, `heldout` (the user's unseen writing) or `others`.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Each text's probability.
    pub values: Vec<f64>,
    /// Their mean.
    pub mean: f64,
}

/// Retrieval quality of one retriever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetrievalRow {
    /// `hybrid`, `bm25` or `vector`.
    pub retriever: String,
    /// Queries.
    pub queries: usize,
    /// Queries the model wrote (the rest fell back to the document title).
    pub model_written: usize,
    /// Share of queries whose document is among the first 1, 5 and 10 documents.
    pub recall_at: BTreeMap<usize, f64>,
    /// Mean reciprocal rank (0 when not within the searched depth).
    pub mrr: f64,
    /// Recall@5 over the model-written queries only.
    pub model_written_recall_at_5: Option<f64>,
}

/// The local judge's scores for one configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeRow {
    /// `base` or `adapter:<id>`.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Drafts judged.
    pub drafts: usize,
    /// Mean accuracy (1–3).
    pub accuracy: f64,
    /// Mean style (1–3).
    pub style: f64,
    /// How many drafts got 1, 2 and 3 for accuracy.
    pub accuracy_counts: [usize; 3],
    /// How many drafts got 1, 2 and 3 for style.
    pub style_counts: [usize; 3],
}

/// A report: every number computed from a run's stored measurements.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The run.
    pub run: EvalRunRecord,
    /// Its settings (models, adapters, parameters).
    pub settings: Option<RunSettings>,
    /// Held-out examples.
    pub heldout_examples: usize,
    /// Held-out words.
    pub heldout_words: usize,
    /// Perplexity per configuration (base first).
    pub perplexity: Vec<PerplexityRow>,
    /// Style distance per configuration, then other people's writing for scale.
    pub style: Vec<StyleRow>,
    /// "Sounds like you" per configuration, for the held-out writing and for unseen others.
    pub authorship: Vec<AuthorshipRow>,
    /// Retrieval per retriever.
    pub retrieval: Vec<RetrievalRow>,
    /// Judge scores per configuration.
    pub judge: Vec<JudgeRow>,
    /// Drafts with their scores, for reading.
    pub drafts: Vec<DraftRow>,
    /// How well "sounds like you" separates the user's held-out writing from the base model's
    /// drafts on held-out topics: the area under the ROC curve (1 = always, 0.5 = chance).
    #[serde(default)]
    pub authorship_auc: Option<f64>,
    /// Draft health per configuration: how many drafts could be posted as they are.
    #[serde(default)]
    pub health: Vec<HealthRow>,
}

/// Draft health of one configuration's drafts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthRow {
    /// Configuration.
    pub config: String,
    /// Readable name.
    pub label: String,
    /// Drafts measured (those stored before draft health existed are not counted).
    pub drafts: usize,
    /// Drafts that passed every hard check.
    pub publishable: usize,
    /// How often each hard check failed, by name.
    pub failed: BTreeMap<String, usize>,
}

impl HealthRow {
    /// Publishable drafts as a share.
    pub fn rate(&self) -> f64 {
        if self.drafts == 0 {
            0.0
        } else {
            self.publishable as f64 / self.drafts as f64
        }
    }
}

/// One draft and what was measured on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DraftRow {
    /// Configuration.
    pub config: String,
    /// The topic.
    pub topic: String,
    /// The text.
    pub text: String,
    /// "Sounds like you" probability.
    pub authorship: Option<f64>,
    /// Judge: accuracy and style.
    pub judge: Option<(u8, u8)>,
}

impl Summary {
    /// The report of run `id`, computed from its stored measurements.
    pub fn load(store: &crate::store::Store, id: EvalRunId) -> Result<Self, EvalError> {
        let run = store.eval_run(id)?.ok_or(EvalError::NoRun(id))?;
        let items = store.eval_items(id)?;
        Ok(Self::from_items(run, &items))
    }

    /// The report from `items` (the rows of `run`).
    pub fn from_items(run: EvalRunRecord, items: &[EvalItem]) -> Self {
        let settings: Option<RunSettings> = serde_json::from_value(run.params.clone()).ok();
        let label = |config: &str| -> String {
            settings
                .as_ref()
                .and_then(|s| s.configs.iter().find(|c| c.config == config))
                .map(|c| c.label.clone())
                .unwrap_or_else(|| match config {
                    "heldout" => "your held-out writing".into(),
                    "others" => "other writers (unseen)".into(),
                    other => other.into(),
                })
        };
        fn of<'a>(items: &'a [EvalItem], kind: &'a str) -> impl Iterator<Item = &'a EvalItem> {
            items.iter().filter(move |i| i.kind == kind)
        }
        let of_kind = |kind: &'static str| of(items, kind);
        let mut configs: Vec<String> = settings
            .as_ref()
            .map(|s| s.configs.iter().map(|c| c.config.clone()).collect())
            .unwrap_or_default();
        for i in items {
            if matches!(i.kind.as_str(), "nll" | "draft") && !configs.contains(&i.config) {
                configs.push(i.config.clone());
            }
        }

        let heldout: Vec<String> = of_kind("heldout").map(text_of).collect();
        let heldout_words = of_kind("heldout").map(|i| i.value as usize).sum();

        let perplexity = configs
            .iter()
            .filter_map(|c| {
                let rows: Vec<&EvalItem> = of_kind("nll").filter(|i| &i.config == c).collect();
                let tokens: usize = rows
                    .iter()
                    .map(|i| i.detail["tokens"].as_u64().unwrap_or(0) as usize)
                    .sum();
                (tokens > 0).then(|| {
                    let nll = rows.iter().map(|i| i.value).sum::<f64>() / tokens as f64;
                    PerplexityRow {
                        config: c.clone(),
                        label: label(c),
                        examples: rows.len(),
                        tokens,
                        nll,
                        perplexity: nll.exp(),
                    }
                })
            })
            .collect();

        let style = style_rows(&configs, items, &heldout, &label);

        let mut authorship = Vec::new();
        let mut groups = configs.clone();
        groups.extend(["heldout".to_string(), "others".to_string()]);
        for g in &groups {
            let values: Vec<f64> = of_kind("authorship")
                .filter(|i| &i.config == g)
                .map(|i| i.value)
                .collect();
            if !values.is_empty() {
                authorship.push(AuthorshipRow {
                    config: g.clone(),
                    label: label(g),
                    mean: values.iter().sum::<f64>() / values.len() as f64,
                    values,
                });
            }
        }

        let values_of = |config: &str| {
            authorship
                .iter()
                .find(|a: &&AuthorshipRow| a.config == config)
                .map(|a| a.values.clone())
        };
        let authorship_auc = match (values_of("heldout"), values_of("base")) {
            (Some(user), Some(machine)) => auc(&user, &machine),
            _ => None,
        };

        let retrieval = ["hybrid", "bm25", "vector"]
            .iter()
            .filter_map(|r| {
                let rows: Vec<&EvalItem> =
                    of_kind("retrieval").filter(|i| i.config == *r).collect();
                if rows.is_empty() {
                    return None;
                }
                let n = rows.len() as f64;
                let recall = |k: usize, rows: &[&EvalItem]| {
                    rows.iter()
                        .filter(|i| i.value >= 1.0 && i.value <= k as f64)
                        .count() as f64
                        / rows.len().max(1) as f64
                };
                let written: Vec<&EvalItem> = rows
                    .iter()
                    .copied()
                    .filter(|i| !i.detail["from_title"].as_bool().unwrap_or(false))
                    .collect();
                Some(RetrievalRow {
                    retriever: r.to_string(),
                    queries: rows.len(),
                    model_written: written.len(),
                    recall_at: [1, 5, 10]
                        .into_iter()
                        .map(|k| (k, recall(k, &rows)))
                        .collect(),
                    mrr: rows
                        .iter()
                        .map(|i| if i.value >= 1.0 { 1.0 / i.value } else { 0.0 })
                        .sum::<f64>()
                        / n,
                    model_written_recall_at_5: (!written.is_empty()).then(|| recall(5, &written)),
                })
            })
            .collect();

        let score = |i: &EvalItem, field: &str| i.detail[field].as_u64().unwrap_or(0) as u8;
        let judge = configs
            .iter()
            .filter_map(|c| {
                let rows: Vec<&EvalItem> = of_kind("judge").filter(|i| &i.config == c).collect();
                if rows.is_empty() {
                    return None;
                }
                let mut accuracy_counts = [0usize; 3];
                let mut style_counts = [0usize; 3];
                for i in &rows {
                    if let Some(slot) =
                        accuracy_counts.get_mut(score(i, "accuracy").wrapping_sub(1) as usize)
                    {
                        *slot += 1;
                    }
                    if let Some(slot) =
                        style_counts.get_mut(score(i, "style").wrapping_sub(1) as usize)
                    {
                        *slot += 1;
                    }
                }
                let n = rows.len() as f64;
                Some(JudgeRow {
                    config: c.clone(),
                    label: label(c),
                    drafts: rows.len(),
                    accuracy: rows
                        .iter()
                        .map(|i| f64::from(score(i, "accuracy")))
                        .sum::<f64>()
                        / n,
                    style: rows
                        .iter()
                        .map(|i| f64::from(score(i, "style")))
                        .sum::<f64>()
                        / n,
                    accuracy_counts,
                    style_counts,
                })
            })
            .collect();

        let drafts = of_kind("draft")
            .map(|d| DraftRow {
                config: d.config.clone(),
                topic: d.detail["topic"].as_str().unwrap_or_default().to_string(),
                text: text_of(d),
                authorship: of_kind("authorship")
                    .find(|a| a.config == d.config && a.key == d.key)
                    .map(|a| a.value),
                judge: of_kind("judge")
                    .find(|j| j.config == d.config && j.key == d.key)
                    .map(|j| (score(j, "accuracy"), score(j, "style"))),
            })
            .collect();

        let mut health: Vec<HealthRow> = Vec::new();
        for d in of_kind("draft") {
            let Some(publishable) = d.detail["publishable"].as_bool() else {
                continue;
            };
            let i = match health.iter().position(|h| h.config == d.config) {
                Some(i) => i,
                None => {
                    health.push(HealthRow {
                        config: d.config.clone(),
                        label: label(&d.config),
                        drafts: 0,
                        publishable: 0,
                        failed: BTreeMap::new(),
                    });
                    health.len() - 1
                }
            };
            let row = &mut health[i];
            row.drafts += 1;
            row.publishable += usize::from(publishable);
            for name in d.detail["failed"].as_array().into_iter().flatten() {
                if let Some(n) = name.as_str() {
                    *row.failed.entry(n.to_string()).or_default() += 1;
                }
            }
        }

        Self {
            authorship_auc,
            health,
            run,
            settings,
            heldout_examples: heldout.len(),
            heldout_words,
            perplexity,
            style,
            authorship,
            retrieval,
            judge,
            drafts,
        }
    }

    /// The perplexity row of `config`.
    pub fn perplexity_of(&self, config: &str) -> Option<&PerplexityRow> {
        self.perplexity.iter().find(|r| r.config == config)
    }

    /// The style row of `config`.
    pub fn style_of(&self, config: &str) -> Option<&StyleRow> {
        self.style.iter().find(|r| r.config == config)
    }

    /// Headline numbers as (metric, value) pairs: what `--compare` puts side by side.
    pub fn headline(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for p in &self.perplexity {
            out.push((format!("perplexity · {}", p.config), p.perplexity));
        }
        for s in self
            .style
            .iter()
            .filter(|s| s.config != "others" && s.config != "heldout")
        {
            out.push((format!("style distance · {}", s.config), s.relative));
            out.push((format!("Burrows' Delta · {}", s.config), s.distance.delta));
        }
        for a in &self.authorship {
            out.push((format!("sounds like you · {}", a.config), a.mean));
        }
        if let Some(a) = self.authorship_auc {
            out.push(("sounds like you AUC · held-out vs base drafts".into(), a));
        }
        for h in &self.health {
            out.push((format!("publishable · {}", h.config), h.rate()));
        }
        for r in &self.retrieval {
            for (k, v) in &r.recall_at {
                out.push((format!("recall@{k} · {}", r.retriever), *v));
            }
            out.push((format!("MRR · {}", r.retriever), r.mrr));
        }
        for j in &self.judge {
            out.push((format!("judge accuracy · {}", j.config), j.accuracy));
            out.push((format!("judge style · {}", j.config), j.style));
        }
        out
    }
}

/// Style rows: each drafting configuration's drafts, then other people's writing, all against
/// the user's held-out writing. The Delta basis is every single text (held-out passages and
/// reference passages), so z-scores reflect how much rates vary between texts.
fn style_rows(
    configs: &[String],
    items: &[EvalItem],
    heldout: &[String],
    label: &dyn Fn(&str) -> String,
) -> Vec<StyleRow> {
    if heldout.is_empty() {
        return Vec::new();
    }
    let others = authorship::reference_passages();
    let mut singles: Vec<StyleProfile> = heldout.iter().map(|t| StyleProfile::of(&[t])).collect();
    singles.extend(others.iter().map(|t| StyleProfile::of(&[t])));
    let basis = DeltaBasis::from_profiles(&singles);
    let user = StyleProfile::of(heldout);
    let others_profile = StyleProfile::of(&others);
    let others_distance = basis.distance(&others_profile, &user);
    let row = |config: &str, texts: &[String], profile: &StyleProfile| {
        let distance = basis.distance(profile, &user);
        StyleRow {
            config: config.to_string(),
            label: label(config),
            texts: texts.len(),
            words: profile.words,
            mean_sentence_length: profile.mean_sentence_length(),
            mattr: profile.mattr,
            relative: distance.relative_to(&others_distance),
            distance,
        }
    };
    let mut rows = Vec::new();
    for c in configs {
        let texts: Vec<String> = items
            .iter()
            .filter(|i| i.kind == "draft" && &i.config == c)
            .map(text_of)
            .collect();
        if !texts.is_empty() {
            rows.push(row(c, &texts, &StyleProfile::of(&texts)));
        }
    }
    rows.push(row("others", &others, &others_profile));
    let mut user_row = row("heldout", heldout, &user);
    user_row.label = "your held-out writing".into();
    rows.push(user_row);
    rows
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
    dataset
        .split(crate::train::dataset::MACHINE_SPLIT)
        .map(|e| e.reply.as_str())
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
