//! The commands the UI invokes: each one parses its arguments, calls the core service
//! ([`Twin`]) on a blocking worker so the window never freezes, and returns what it returns.
//! Progress and streamed text go back through a `Channel` as JSON events; errors as
//! `{kind, message, path?}` ([`TwinError`]).

use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tauri::ipc::Channel;
use tauri::{Emitter, State};
use twin_core::draft::{self, DraftEvent, Format};
use twin_core::eval::{self, EvalParams, Summary};
use twin_core::models;
use twin_core::service::{self, DraftSpec, JobKind, Settings};
use twin_core::train::TrainEvent;
use twin_core::{ImportOptions, ProgressEvent, SearchQuery, Twin, TwinError, TwinOptions};

use crate::grants::PathGrants;

type CmdResult<T> = Result<T, TwinError>;

/// What every command shares: the service, and what only a window has.
pub struct AppState {
    twin: Arc<Twin>,
    /// The paths the user picked, dropped or opened Twin with: the only ones the page may name.
    pub grants: PathGrants,
    /// Paths named on the command line, imported once when the window is ready.
    launch: Mutex<Vec<PathBuf>>,
}

impl AppState {
    /// The service over `TWIN_DATA_DIR`, else the platform's data folder (as the CLI), with the
    /// app bundle's `models/` as one more place for the default models.
    pub fn new(bundled_models: Option<PathBuf>) -> CmdResult<Self> {
        let twin = Twin::open(TwinOptions {
            data_dir: std::env::var_os("TWIN_DATA_DIR").map(PathBuf::from),
            model_dirs: bundled_models.into_iter().collect(),
            ..Default::default()
        })?;
        Ok(Self {
            twin: Arc::new(twin),
            grants: PathGrants::default(),
            launch: Mutex::new(Vec::new()),
        })
    }

    /// Paths named on the command line: granted, and handed to the page once to import.
    pub fn opened_with(&self, paths: Vec<PathBuf>) {
        self.grants.grant_read(&paths);
        if let Ok(mut launch) = self.launch.lock() {
            *launch = paths;
        }
    }

    /// The paths Twin was opened with, handed out once.
    pub fn take_launch_paths(&self) -> Vec<PathBuf> {
        self.launch
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Run `f` on a blocking worker with the service.
async fn run<T: Send + 'static>(
    state: &State<'_, AppState>,
    f: impl FnOnce(&Twin) -> CmdResult<T> + Send + 'static,
) -> CmdResult<T> {
    let twin = Arc::clone(&state.twin);
    tauri::async_runtime::spawn_blocking(move || f(&twin))
        .await
        .map_err(|e| TwinError::failed(e.to_string()))?
}

/// [`run`] as the cancellable job `kind` (see [`cancel_job`]).
async fn job<T: Send + 'static>(
    state: &State<'_, AppState>,
    kind: JobKind,
    f: impl FnOnce(&Twin, &twin_core::CancelToken) -> CmdResult<T> + Send + 'static,
) -> CmdResult<T> {
    run(state, move |twin| {
        twin.run_job(kind, |cancel| f(twin, cancel))
    })
    .await
}

fn progress_sink(channel: Channel<Value>) -> impl Fn(ProgressEvent) + Send + Sync {
    move |e: ProgressEvent| {
        let _ = channel.send(json!({ "kind": "progress", "progress": e }));
    }
}

/// Library totals, the data folder and the models in use: the header of every screen.
#[tauri::command]
pub async fn app_info(state: State<'_, AppState>) -> CmdResult<service::Info> {
    run(&state, |twin| twin.info()).await
}

/// Import dropped or picked files and folders (what the drag-and-drop handler calls).
#[tauri::command]
pub async fn import_paths(
    state: State<'_, AppState>,
    paths: Vec<String>,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::ImportReport> {
    let paths = paths
        .iter()
        .map(|p| state.grants.readable(p))
        .collect::<CmdResult<Vec<PathBuf>>>()?;
    job(&state, JobKind::Import, move |twin, cancel| {
        let sink = progress_sink(on_event);
        twin.import(&paths, ImportOptions::default(), &sink, cancel)
    })
    .await
}

/// Add a folder as a watched source, import it, and keep following every watched folder.
#[tauri::command]
pub async fn watch_folder(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    path: String,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::ImportReport> {
    let folder = state.grants.readable(&path)?;
    job(&state, JobKind::Import, move |twin, cancel| {
        let report = twin.add_watched(&folder, &progress_sink(on_event), cancel)?;
        twin.follow_watched(move |event| {
            let _ = app.emit("library-changed", format!("{event:?}"));
        });
        Ok(report)
    })
    .await
}

/// The library's sources with document and chunk counts.
#[tauri::command]
pub async fn list_sources(state: State<'_, AppState>) -> CmdResult<Vec<twin_core::store::Source>> {
    run(&state, |twin| twin.with_library(|lib| Ok(lib.sources()?))).await
}

/// Hybrid search.
#[tauri::command]
pub async fn search(
    state: State<'_, AppState>,
    text: String,
    limit: usize,
) -> CmdResult<Vec<twin_core::SearchResult>> {
    let query = SearchQuery::new(text, limit.clamp(1, 50));
    run(&state, move |twin| {
        twin.with_library(|lib| Ok(lib.search(&query)?))
    })
    .await
}

/// What the Draft screen asks for.
#[derive(Debug, Deserialize)]
pub struct DraftArgs {
    topic: String,
    format: Format,
    strength: Option<f32>,
    draft_only: bool,
    seed: Option<u32>,
}

impl DraftArgs {
    fn spec(self) -> DraftSpec {
        let mut spec = DraftSpec::new(self.topic, self.format);
        spec.request.draft_only = self.draft_only;
        if let Some(seed) = self.seed {
            spec.request.sampling.seed = seed;
        }
        spec.strength = self.strength;
        spec
    }
}

/// Do a draft's retrieval and evaluate its prompt while the topic is being typed (see
/// [`Twin::prepare_draft`]).
#[tauri::command]
pub async fn prepare_draft(
    state: State<'_, AppState>,
    args: DraftArgs,
) -> CmdResult<service::Preparation> {
    let spec = args.spec();
    run(&state, move |twin| twin.prepare_draft(&spec)).await
}

/// Draft in the user's voice, streaming what it runs on, its steps and its text.
#[tauri::command]
pub async fn draft(
    state: State<'_, AppState>,
    args: DraftArgs,
    on_event: Channel<Value>,
) -> CmdResult<service::DraftOutcome> {
    let spec = args.spec();
    job(&state, JobKind::Draft, move |twin, cancel| {
        let setup = |s: &service::DraftSetup| {
            let _ = on_event.send(json!({ "kind": "model", "setup": s }));
        };
        twin.draft(&spec, cancel, setup, &mut |event: DraftEvent| {
            let _ = on_event.send(json!({ "kind": "draft", "event": event }));
        })
    })
    .await
}

/// Cancel a running job.
#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>, job: JobKind) -> bool {
    state.twin.cancel(job)
}

/// The style card (the user's edit, else the one computed from the library).
#[tauri::command]
pub async fn style_card(state: State<'_, AppState>) -> CmdResult<draft::StyleCard> {
    run(&state, |twin| {
        twin.with_library(|lib| Ok(draft::style::card(lib.store())?))
    })
    .await
}

/// Save the user's edit of the style card (`None` goes back to the computed one).
#[tauri::command]
pub async fn set_style_card(state: State<'_, AppState>, text: Option<String>) -> CmdResult<()> {
    run(&state, move |twin| {
        twin.with_library(|lib| Ok(draft::style::set_card(lib.store(), text.as_deref())?))
    })
    .await
}

/// Past drafts (the stored traces), newest first.
#[tauri::command]
pub async fn draft_history(
    state: State<'_, AppState>,
    limit: usize,
) -> CmdResult<Vec<service::PastDraft>> {
    run(&state, move |twin| twin.draft_history(limit)).await
}

/// Write a draft as Markdown with front matter to the file the user picked in the save dialog.
#[tauri::command]
pub async fn export_markdown(
    state: State<'_, AppState>,
    path: String,
    topic: String,
    format: Format,
    text: String,
) -> CmdResult<()> {
    let target = state.grants.writable(&path)?;
    let markdown = draft::markdown(&topic, format, &text, twin_core::store::now_secs());
    std::fs::write(&target, markdown).map_err(|e| TwinError {
        kind: twin_core::ErrorKind::Io,
        message: format!("{path}: {e}"),
        path: Some(target),
    })
}

/// Registered models, the active ones, and models found in Ollama and LM Studio.
#[tauri::command]
pub async fn list_models(state: State<'_, AppState>) -> CmdResult<service::ModelsOverview> {
    let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
    let overview = run(&state, move |twin| twin.models(home.as_deref())).await?;
    // Twin found these itself: the page may ask to register them.
    state
        .grants
        .grant_read(overview.discovered.iter().map(|d| &d.path));
    Ok(overview)
}

/// Register a GGUF file (picked in the open dialog, or found in Ollama / LM Studio) in place.
#[tauri::command]
pub async fn add_model(
    state: State<'_, AppState>,
    path: String,
    origin: Option<String>,
) -> CmdResult<twin_core::store::ModelRecord> {
    let path = state.grants.readable(&path)?;
    run(&state, move |twin| {
        twin.add_model(&path, origin.as_deref().unwrap_or("added"), None)
    })
    .await
}

/// Make a registered model the active one of its kind.
#[tauri::command]
pub async fn use_model(state: State<'_, AppState>, id: i64) -> CmdResult<()> {
    run(&state, move |twin| {
        twin.use_model(&id.to_string()).map(|_| ())
    })
    .await
}

/// Twin's model catalog judged against this computer (see `models::catalog`): the pick first.
#[tauri::command]
pub async fn recommended_models(state: State<'_, AppState>) -> CmdResult<service::Recommendations> {
    run(&state, |twin| twin.recommendations()).await
}

/// Download a GGUF from Hugging Face (`HF_ENDPOINT` honoured), resuming a partial download.
#[tauri::command]
pub async fn pull_model(
    state: State<'_, AppState>,
    repo: String,
    file: String,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::store::ModelRecord> {
    let request = models::PullRequest::new(&repo, &file);
    job(&state, JobKind::Pull, move |twin, cancel| {
        twin.pull_model(&request, &progress_sink(on_event), cancel)
    })
    .await
}

/// Threads, GPU layers, author name and the data folder.
#[tauri::command]
pub async fn settings(state: State<'_, AppState>) -> CmdResult<Settings> {
    run(&state, |twin| twin.settings()).await
}

/// Save threads, GPU layers and the author name (models reload on the next draft).
#[tauri::command]
pub async fn save_settings(state: State<'_, AppState>, settings: Settings) -> CmdResult<()> {
    run(&state, move |twin| twin.save_settings(&settings)).await
}

/// The newest dataset: its stats and a few examples (None before the first build).
#[tauri::command]
pub async fn dataset_summary(
    state: State<'_, AppState>,
) -> CmdResult<Option<service::DatasetOverview>> {
    run(&state, |twin| twin.dataset_overview(5)).await
}

/// Build a new dataset version from the library with the active chat model.
#[tauri::command]
pub async fn build_dataset(
    state: State<'_, AppState>,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::store::DatasetRecord> {
    job(&state, JobKind::Dataset, move |twin, cancel| {
        let sink = progress_sink(on_event);
        let params = Default::default();
        Ok(twin
            .build_dataset(params, None, None, &sink, cancel)?
            .record)
    })
    .await
}

/// The training plan for the newest dataset (examples, tokens, steps, memory, ETA).
#[tauri::command]
pub async fn train_plan(
    state: State<'_, AppState>,
    options: Option<service::TrainChoices>,
) -> CmdResult<twin_core::train::TrainPlan> {
    let params = options.unwrap_or_default().params();
    run(&state, move |twin| twin.train_plan(None, None, &params)).await
}

/// Train an adapter on the newest dataset, streaming loss and evaluation events.
#[tauri::command]
pub async fn start_training(
    state: State<'_, AppState>,
    options: Option<service::TrainChoices>,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::train::TrainOutcome> {
    let params = options.unwrap_or_default().params();
    job(&state, JobKind::Train, move |twin, cancel| {
        twin.train(None, None, &params, None, cancel, &mut |e: TrainEvent| {
            let _ = on_event.send(json!({ "kind": "train", "event": e }));
        })
    })
    .await
}

/// Adapters with lineage and which channel uses which.
#[tauri::command]
pub async fn list_adapters(state: State<'_, AppState>) -> CmdResult<service::AdaptersOverview> {
    run(&state, |twin| twin.adapters()).await
}

/// Use an adapter (None: the base model) for a channel at a strength.
#[tauri::command]
pub async fn use_adapter(
    state: State<'_, AppState>,
    id: Option<i64>,
    strength: f32,
    channel: Option<String>,
) -> CmdResult<()> {
    run(&state, move |twin| {
        let id = id.map(|i| i.to_string());
        twin.use_adapter(id.as_deref(), strength, channel.as_deref())
            .map(|_| ())
    })
    .await
}

/// Go back to the adapter a channel used before; whether anything changed.
#[tauri::command]
pub async fn rollback_adapter(
    state: State<'_, AppState>,
    channel: Option<String>,
) -> CmdResult<bool> {
    run(&state, move |twin| {
        Ok(twin.rollback_adapter(channel.as_deref())?.is_some())
    })
    .await
}

/// Run an evaluation of the active chat model and its adapters on the newest dataset,
/// streaming progress; returns the report.
#[tauri::command]
pub async fn run_eval(
    state: State<'_, AppState>,
    drafts: Option<usize>,
    judge: Option<bool>,
    on_event: Channel<Value>,
) -> CmdResult<Summary> {
    let mut params = EvalParams::default();
    params.drafts = drafts.unwrap_or(params.drafts);
    params.judge = judge.unwrap_or(params.judge);
    job(&state, JobKind::Eval, move |twin, cancel| {
        let sink = progress_sink(on_event);
        Ok(twin
            .evaluate(params, None, None, None, &sink, cancel)?
            .summary)
    })
    .await
}

/// Stored evaluation runs, newest first.
#[tauri::command]
pub async fn eval_runs(
    state: State<'_, AppState>,
) -> CmdResult<Vec<twin_core::store::EvalRunRecord>> {
    run(&state, |twin| {
        twin.with_library(|lib| Ok(lib.store().eval_runs(50)?))
    })
    .await
}

/// The report of one run, recomputed from its measurements.
#[tauri::command]
pub async fn eval_report(state: State<'_, AppState>, id: i64) -> CmdResult<Summary> {
    run(&state, move |twin| {
        twin.with_library(|lib| Ok(Summary::load(lib.store(), id)?))
    })
    .await
}

/// Two runs' headline numbers side by side.
#[tauri::command]
pub async fn compare_evals(
    state: State<'_, AppState>,
    a: i64,
    b: i64,
) -> CmdResult<Vec<eval::report::ComparedMetric>> {
    run(&state, move |twin| {
        twin.with_library(|lib| Ok(eval::report::compare_runs(lib.store(), a, b)?))
    })
    .await
}
