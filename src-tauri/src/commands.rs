//! The commands the UI invokes. Each one is `async` and moves its work onto a blocking worker,
//! so long imports, drafts and training never block the window; progress and streamed text go
//! back through a `Channel` as JSON events.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tauri::ipc::Channel;
use tauri::{Emitter, State};
use twin_core::draft::{self, DraftEvent, DraftRequest, Format, Templates};
use twin_core::engine::{ChatModel, ChatModelConfig, EmbedderConfig};
use twin_core::eval::{self, authorship::AuthorshipModel, EvalParams, Summary};
use twin_core::models::{self, registry};
use twin_core::train::{self, adapters, Dataset, DatasetParams, TrainEvent, TrainParams};
use twin_core::{CancelToken, ImportOptions, Library, ProgressEvent, SearchQuery};

use crate::grants::PathGrants;

/// Errors reach the UI as their message.
type CmdResult<T> = Result<T, String>;

fn msg(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A chat model kept loaded between drafts (loading takes a second or more).
struct LoadedChat {
    key: (i64, Option<PathBuf>, Option<u32>, usize),
    model: Arc<ChatModel>,
}

/// The "sounds like you" classifier and the library size (documents, chunks) it was fitted at.
type ClassifierCache = Mutex<Option<((u64, u64), Arc<AuthorshipModel>)>>;

/// What every command shares.
pub struct AppState {
    data_dir: PathBuf,
    library: Arc<Mutex<Option<Library>>>,
    chat: Arc<Mutex<Option<LoadedChat>>>,
    jobs: Mutex<HashMap<String, CancelToken>>,
    watching: Mutex<Option<CancelToken>>,
    /// The "sounds like you" classifier, refitted when the library's size changes.
    authorship: Arc<ClassifierCache>,
    /// The newest draft prepared while its topic was typed (see [`prepare_draft`]).
    prepared: Arc<Mutex<Option<draft::Prepared>>>,
    /// The topic and format of the preparation in flight, if one is.
    preparing: Arc<Mutex<Option<(String, String)>>>,
    /// The paths the user picked, dropped or opened Twin with: the only ones the page may name.
    pub grants: PathGrants,
    /// Paths named on the command line, imported once when the window is ready.
    launch: Mutex<Vec<PathBuf>>,
}

/// Settings the app keeps in the store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppSettings {
    /// CPU threads for llama.cpp (0 = all cores).
    pub threads: usize,
    /// GPU layers (None = as many as fit, on GPU builds).
    pub gpu_layers: Option<u32>,
    /// The data folder (read-only here: set `TWIN_DATA_DIR` to move it).
    pub data_dir: String,
    /// How prompts name the author.
    pub author: String,
}

impl AppSettings {
    /// How to run a chat model with these settings.
    fn chat_config(&self) -> ChatModelConfig {
        let mut config = ChatModelConfig {
            gpu_layers: self.gpu_layers,
            ..Default::default()
        };
        if self.threads > 0 {
            config.threads = self.threads;
        }
        config
    }
}

impl AppState {
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

    /// The data folder from `TWIN_DATA_DIR`, else the platform's data folder (as the CLI).
    pub fn new() -> Result<Self, String> {
        let data_dir = match std::env::var_os("TWIN_DATA_DIR") {
            Some(d) => PathBuf::from(d),
            None => twin_core::library::default_data_dir()
                .ok_or("cannot tell the platform's data folder; set TWIN_DATA_DIR")?,
        };
        Ok(Self {
            data_dir,
            library: Arc::new(Mutex::new(None)),
            chat: Arc::new(Mutex::new(None)),
            jobs: Mutex::new(HashMap::new()),
            watching: Mutex::new(None),
            authorship: Arc::new(Mutex::new(None)),
            prepared: Arc::new(Mutex::new(None)),
            preparing: Arc::new(Mutex::new(None)),
            grants: PathGrants::default(),
            launch: Mutex::new(Vec::new()),
        })
    }

    fn start_job(&self, id: &str) -> CancelToken {
        let token = CancelToken::new();
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(id.to_string(), token.clone());
        }
        token
    }

    /// Forget job `id` if `token` is still its token: a newer job of the same name may have
    /// replaced it, and must stay cancellable.
    fn end_job(&self, id: &str, token: &CancelToken) {
        if let Ok(mut jobs) = self.jobs.lock() {
            if jobs.get(id).is_some_and(|t| t.same_as(token)) {
                jobs.remove(id);
            }
        }
    }

    /// Cancel job `id` if it is running; whether it was.
    fn cancel(&self, id: &str) -> bool {
        self.jobs
            .lock()
            .ok()
            .and_then(|jobs| jobs.get(id).cloned())
            .map(|t| t.cancel())
            .is_some()
    }
}

/// Run `f` with the library (opened on first use) on a blocking worker. A draft being prepared
/// in the background (see [`prepare_draft`]) holds the library for seconds, so it is cancelled
/// first: what the user asks for now comes first.
async fn with_library<T: Send + 'static>(
    state: &State<'_, AppState>,
    f: impl FnOnce(&mut Library) -> CmdResult<T> + Send + 'static,
) -> CmdResult<T> {
    state.cancel("prepare");
    with_library_as_is(state, f).await
}

/// [`with_library`], leaving a preparation in flight alone.
async fn with_library_as_is<T: Send + 'static>(
    state: &State<'_, AppState>,
    f: impl FnOnce(&mut Library) -> CmdResult<T> + Send + 'static,
) -> CmdResult<T> {
    let library = Arc::clone(&state.library);
    let dir = state.data_dir.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let mut guard = library
            .lock()
            .map_err(|_| "the library is busy after a crash; restart Twin")?;
        if guard.is_none() {
            let threads = threads_setting(&dir);
            let mut config = EmbedderConfig::default();
            if threads > 0 {
                config.threads = threads;
            }
            *guard = Some(Library::open(&dir, config).map_err(msg)?);
        }
        let lib = guard.as_mut().ok_or("the library could not be opened")?;
        f(lib)
    })
    .await
    .map_err(msg)?
}

/// Run `f` with the library as the cancellable job `job` (see [`cancel_job`]). Preparing and
/// drafting decide themselves what happens to a preparation in flight.
async fn with_job<T: Send + 'static>(
    state: &State<'_, AppState>,
    job: &str,
    f: impl FnOnce(&mut Library, &CancelToken) -> CmdResult<T> + Send + 'static,
) -> CmdResult<T> {
    if job != "prepare" && job != "draft" {
        state.cancel("prepare");
    }
    let cancel = state.start_job(job);
    let token = cancel.clone();
    let result = with_library_as_is(state, move |lib| f(lib, &cancel)).await;
    state.end_job(job, &token);
    result
}

fn threads_setting(dir: &Path) -> usize {
    twin_core::store::Store::open(&dir.join(twin_core::library::DATABASE_FILE))
        .ok()
        .and_then(|s| s.setting("app.threads").ok().flatten())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn read_settings(lib: &Library) -> CmdResult<AppSettings> {
    let store = lib.store();
    Ok(AppSettings {
        threads: store
            .setting("app.threads")
            .map_err(msg)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        gpu_layers: store
            .setting("app.gpu_layers")
            .map_err(msg)?
            .and_then(|v| v.parse().ok()),
        data_dir: lib.data_dir().to_string_lossy().into_owned(),
        author: store
            .setting("app.author")
            .map_err(msg)?
            .unwrap_or_else(|| "the author".into()),
    })
}

fn progress_sink(channel: Channel<Value>) -> impl Fn(ProgressEvent) + Send + Sync {
    move |e: ProgressEvent| {
        let _ = channel.send(json!({ "kind": "progress", "progress": e }));
    }
}

/// Library totals, the data folder and the models in use: the header of every screen.
#[tauri::command]
pub async fn app_info(state: State<'_, AppState>) -> CmdResult<Value> {
    with_library(&state, |lib| {
        let store = lib.store();
        let chat = registry::active(store, models::ModelKind::Chat).map_err(msg)?;
        Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "data_dir": lib.data_dir(),
            "stats": store.stats().map_err(msg)?,
            "embedding_model": store.embedding_model().map_err(msg)?.map(|m| m.name),
            "chat_model": chat.map(|m| m.name),
        }))
    })
    .await
}

/// Import dropped or picked files and folders (what the drag-and-drop handler calls).
#[tauri::command]
pub async fn import_paths(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    paths: Vec<String>,
    on_event: Channel<Value>,
) -> CmdResult<Value> {
    let paths = paths
        .iter()
        .map(|p| state.grants.readable(p))
        .collect::<CmdResult<Vec<PathBuf>>>()?;
    let models = default_model_dirs(&app);
    with_job(&state, "import", move |lib, c| {
        // First run: a fresh library gets the embedded default models by itself.
        twin_core::first_run::provision(
            lib,
            &models,
            twin_core::first_run::Needs {
                embedding: true,
                chat: true,
            },
        )
        .map_err(msg)?;
        // The user's name (Settings) picks their posts out of a multi-author export.
        let name = lib.store().setting("app.author").map_err(msg)?;
        let options = ImportOptions {
            authors: lib.add_user_names(name.as_slice()).map_err(msg)?,
            ..ImportOptions::default()
        };
        let report = lib
            .import(&paths, &options, &progress_sink(on_event), c)
            .map_err(msg)?;
        serde_json::to_value(report).map_err(msg)
    })
    .await
}

/// Where the embedded default models may be: the usual places (see
/// `twin_core::first_run::search_dirs`) and the app bundle's `models/` resources.
fn default_model_dirs(app: &tauri::AppHandle) -> Vec<PathBuf> {
    use tauri::Manager;
    let bundled: Vec<PathBuf> = app
        .path()
        .resource_dir()
        .map(|d| vec![d.join("models")])
        .unwrap_or_default();
    twin_core::first_run::search_dirs(&bundled)
}

/// Add a folder as a watched source, import it, and keep following every watched folder.
#[tauri::command]
pub async fn watch_folder(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    path: String,
    on_event: Channel<Value>,
) -> CmdResult<Value> {
    let folder = state.grants.readable(&path)?;
    let report = with_library(&state, move |lib| {
        lib.store().add_source(&folder, true).map_err(msg)?;
        let report = lib
            .import(
                &[folder],
                &ImportOptions::default(),
                &progress_sink(on_event),
                &CancelToken::new(),
            )
            .map_err(msg)?;
        serde_json::to_value(report).map_err(msg)
    })
    .await?;
    start_watcher(&app, &state);
    Ok(report)
}

/// One watcher thread with its own connection (SQLite WAL allows it), so following folders
/// never holds the library the other commands use.
fn start_watcher(app: &tauri::AppHandle, state: &State<'_, AppState>) {
    let Ok(mut watching) = state.watching.lock() else {
        return;
    };
    if let Some(old) = watching.take() {
        old.cancel();
    }
    let cancel = CancelToken::new();
    *watching = Some(cancel.clone());
    let dir = state.data_dir.clone();
    let app = app.clone();
    std::thread::spawn(move || {
        let Ok(mut lib) = Library::open(&dir, EmbedderConfig::default()) else {
            return;
        };
        let Ok(sources) = lib.sources() else { return };
        let watched: Vec<_> = sources.into_iter().filter(|s| s.watched).collect();
        let _ = twin_core::library::watch::watch(
            &mut lib,
            &watched,
            &ImportOptions::default(),
            &cancel,
            |event| {
                let _ = app.emit("library-changed", format!("{event:?}"));
            },
        );
    });
}

/// The library's sources with document and chunk counts.
#[tauri::command]
pub async fn list_sources(state: State<'_, AppState>) -> CmdResult<Value> {
    with_library(&state, |lib| {
        serde_json::to_value(lib.sources().map_err(msg)?).map_err(msg)
    })
    .await
}

/// Hybrid search.
#[tauri::command]
pub async fn search(state: State<'_, AppState>, text: String, limit: usize) -> CmdResult<Value> {
    with_library(&state, move |lib| {
        let results = lib
            .search(&SearchQuery::new(text, limit.clamp(1, 50)))
            .map_err(msg)?;
        serde_json::to_value(results).map_err(msg)
    })
    .await
}

/// What the Draft screen asks for.
#[derive(Debug, Deserialize)]
pub struct DraftArgs {
    topic: String,
    format: String,
    strength: Option<f32>,
    draft_only: bool,
    seed: Option<u32>,
}

/// The chat model for drafting `args` (kept loaded while the model, the voice adapter and the
/// settings stay the same), the request, and a description of both for the UI.
fn draft_setup(
    lib: &Library,
    chat: &Mutex<Option<LoadedChat>>,
    args: &DraftArgs,
) -> CmdResult<(Arc<ChatModel>, DraftRequest, Value)> {
    let format: Format = args.format.parse()?;
    let settings = read_settings(lib)?;
    let record = models::resolve_chat_model(lib.store(), None).map_err(msg)?;
    let choice = adapters::for_draft(lib.store(), format.platform(), &record.sha256, &record.name)
        .map_err(msg)?;
    let adapter_path = choice.as_ref().map(|c| PathBuf::from(&c.adapter.path));
    let key = (
        record.id,
        adapter_path.clone(),
        settings.gpu_layers,
        settings.threads,
    );
    let model = {
        let mut cached = chat.lock().map_err(|_| "the model cache is poisoned")?;
        match cached.as_ref().filter(|c| c.key == key) {
            Some(c) => Arc::clone(&c.model),
            None => {
                // Free the old model first: two small models fit, two large ones may not.
                *cached = None;
                let config = ChatModelConfig {
                    adapter: adapter_path,
                    ..settings.chat_config()
                };
                let model = Arc::new(models::load_chat_model(&record, &config).map_err(msg)?);
                *cached = Some(LoadedChat {
                    key,
                    model: Arc::clone(&model),
                });
                model
            }
        }
    };
    let mut request = DraftRequest::new(args.topic.clone(), format);
    request.draft_only = args.draft_only;
    request.author = settings.author;
    request.adapter_scale = match &choice {
        Some(c) => args.strength.unwrap_or(c.scale),
        None => 0.0,
    };
    if let Some(seed) = args.seed {
        request.sampling.seed = seed;
    }
    let described = json!({
        "kind": "model",
        "model": record.name,
        "adapter": choice.as_ref().map(|c| &c.adapter.name),
        "strength": request.adapter_scale,
    });
    Ok((model, request, described))
}

/// Do a draft's retrieval and evaluate its prompt while the topic is being typed, so that
/// "Write" starts at the first token. A newer topic cancels the preparation in flight; the
/// result is kept until the next draft, which uses it only if it was made for that request
/// on the library as it is then.
#[tauri::command]
pub async fn prepare_draft(state: State<'_, AppState>, args: DraftArgs) -> CmdResult<Value> {
    state.cancel("prepare");
    let chat = Arc::clone(&state.chat);
    let prepared = Arc::clone(&state.prepared);
    let preparing = Arc::clone(&state.preparing);
    let mine = (args.topic.clone(), args.format.clone());
    if let Ok(mut p) = preparing.lock() {
        *p = Some(mine.clone());
    }
    let result = with_job(&state, "prepare", move |lib, c| {
        if c.is_cancelled() {
            return Ok(json!({ "ready": false }));
        }
        let (model, request, _) = draft_setup(lib, &chat, &args)?;
        let mut slot = prepared
            .lock()
            .map_err(|_| "the prepared draft is poisoned")?;
        if let Some(p) = slot.as_ref() {
            if p.matches(lib, &request).map_err(msg)? {
                return Ok(json!({ "ready": true, "sources": p.citations().len() }));
            }
        }
        *slot = None;
        drop(slot);
        match draft::prepare(lib, &model, &request, c) {
            Ok(p) => {
                let ready =
                    json!({ "ready": true, "sources": p.citations().len(), "ms": p.ahead_ms() });
                if let Ok(mut slot) = prepared.lock() {
                    *slot = Some(p);
                }
                Ok(ready)
            }
            Err(draft::DraftError::Cancelled) => Ok(json!({ "ready": false })),
            Err(e) => Err(msg(e)),
        }
    })
    .await;
    if let Ok(mut p) = preparing.lock() {
        // A newer preparation may have taken the slot meanwhile.
        if p.as_ref()
            .is_some_and(|(topic, format)| *topic == mine.0 && *format == mine.1)
        {
            *p = None;
        }
    }
    result
}

/// Draft in the user's voice, streaming text and the chosen sources; from the prepared draft
/// when there is one for this request (see [`prepare_draft`]).
#[tauri::command]
pub async fn draft(
    state: State<'_, AppState>,
    args: DraftArgs,
    on_event: Channel<Value>,
) -> CmdResult<Value> {
    // A preparation of this very request is worth waiting for; any other only delays the draft.
    let same = state
        .preparing
        .lock()
        .ok()
        .and_then(|p| p.clone())
        .is_some_and(|(topic, format)| topic == args.topic && format == args.format);
    if !same {
        state.cancel("prepare");
    }
    let chat = Arc::clone(&state.chat);
    let classifier = Arc::clone(&state.authorship);
    let prepared = Arc::clone(&state.prepared);
    with_job(&state, "draft", move |lib, c| {
        let (model, request, described) = draft_setup(lib, &chat, &args)?;
        let _ = on_event.send(described);
        let prepared = prepared.lock().ok().and_then(|mut p| p.take());
        let draft = draft::draft_with(
            lib,
            &model,
            &request,
            prepared,
            c,
            &mut |event: DraftEvent| {
                let _ = on_event.send(json!({ "kind": "draft", "event": event }));
            },
        )
        .map_err(msg)?;
        let mut value = serde_json::to_value(&draft).map_err(msg)?;
        value["sounds_like_you"] = json!(sounds_like_you(lib, &classifier, &draft.text)?);
        Ok(value)
    })
    .await
}

/// Cancel a running job (`import`, `draft`, `dataset`, `train`, `pull`, `eval`).
#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>, job: String) -> bool {
    state.cancel(&job)
}

/// The style card (the user's edit, else the one computed from the library).
#[tauri::command]
pub async fn style_card(state: State<'_, AppState>) -> CmdResult<Value> {
    with_library(&state, |lib| {
        serde_json::to_value(draft::style::card(lib.store()).map_err(msg)?).map_err(msg)
    })
    .await
}

/// Save the user's edit of the style card (`None` goes back to the computed one).
#[tauri::command]
pub async fn set_style_card(state: State<'_, AppState>, text: Option<String>) -> CmdResult<()> {
    with_library(&state, move |lib| {
        draft::style::set_card(lib.store(), text.as_deref()).map_err(msg)
    })
    .await
}

/// Past drafts (the stored traces), newest first.
#[tauri::command]
pub async fn draft_history(state: State<'_, AppState>, limit: usize) -> CmdResult<Value> {
    with_library(&state, move |lib| {
        let traces = lib.store().traces(limit.clamp(1, 200)).map_err(msg)?;
        Ok(Value::Array(
            traces
                .into_iter()
                .map(|t| {
                    json!({
                        "id": t.id, "created_at": t.created_at, "status": t.status,
                        "topic": t.topic, "format": t.format, "model": t.model,
                        "adapter": t.adapter, "output": t.output,
                    })
                })
                .collect(),
        ))
    })
    .await
}

/// Write a draft as Markdown with front matter to the file the user picked in the save dialog.
#[tauri::command]
pub async fn export_markdown(
    state: State<'_, AppState>,
    path: String,
    topic: String,
    format: String,
    text: String,
) -> CmdResult<()> {
    let platform = format
        .parse::<Format>()
        .map(|f| f.platform())
        .unwrap_or("blog");
    let date = twin_core::store::now_secs() / 86_400;
    let front = format!(
        "---\ntitle: {}\nplatform: {platform}\ndraft: true\ncreated_days_since_epoch: {date}\ngenerated_by: Twin\n---\n\n",
        serde_json::to_string(&topic).map_err(msg)?
    );
    let target = state.grants.writable(&path)?;
    std::fs::write(&target, format!("{front}{}\n", text.trim_end()))
        .map_err(|e| format!("{path}: {e}"))
}

/// Registered models, the active chat model, and models found in Ollama and LM Studio.
#[tauri::command]
pub async fn list_models(state: State<'_, AppState>) -> CmdResult<Value> {
    let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
    let discovered = home.map(|h| registry::discover(&h)).unwrap_or_default();
    // Twin found these itself: the page may ask to register them.
    state.grants.grant_read(discovered.iter().map(|d| &d.path));
    with_library(&state, move |lib| {
        let store = lib.store();
        Ok(json!({
            "registered": store.models().map_err(msg)?,
            "active_chat": registry::active(store, models::ModelKind::Chat).map_err(msg)?.map(|m| m.id),
            "active_reranker": registry::active(store, models::ModelKind::Reranker).map_err(msg)?.map(|m| m.id),
            "discovered": discovered.iter().map(|d| json!({
                "name": d.name, "path": d.path, "origin": d.origin,
            })).collect::<Vec<_>>(),
        }))
    })
    .await
}

/// Register a GGUF file (picked in the open dialog, or found in Ollama / LM Studio) in place.
#[tauri::command]
pub async fn add_model(
    state: State<'_, AppState>,
    path: String,
    origin: Option<String>,
) -> CmdResult<Value> {
    let path = state.grants.readable(&path)?;
    with_library(&state, move |lib| {
        let record = registry::register(
            lib.store(),
            &path,
            origin.as_deref().unwrap_or("added"),
            None,
            None,
        )
        .map_err(msg)?;
        if record.kind == "chat"
            && registry::active(lib.store(), models::ModelKind::Chat)
                .map_err(msg)?
                .is_none()
        {
            registry::set_active(lib.store(), &record).map_err(msg)?;
        }
        serde_json::to_value(record).map_err(msg)
    })
    .await
}

/// Make a registered model the active one of its kind.
#[tauri::command]
pub async fn use_model(state: State<'_, AppState>, id: i64) -> CmdResult<()> {
    with_library(&state, move |lib| {
        let record = registry::find(lib.store(), &id.to_string()).map_err(msg)?;
        registry::set_active(lib.store(), &record).map_err(msg)
    })
    .await
}

/// Twin's model catalog judged against this computer (see `models::catalog`): the pick first.
#[tauri::command]
pub async fn recommended_models(state: State<'_, AppState>) -> CmdResult<Value> {
    with_library(&state, |lib| {
        let devices = twin_core::engine::compute_devices().map_err(msg)?;
        let machine = models::Machine::from_devices(&devices);
        let catalog = models::Catalog::shipped();
        let recs = models::recommend(&catalog, &machine, &lib.store().models().map_err(msg)?);
        Ok(
            json!({"catalog_version": catalog.version, "reviewed": catalog.reviewed,
            "machine": machine, "models": recs}),
        )
    })
    .await
}

/// Download a GGUF from Hugging Face (`HF_ENDPOINT` honoured), resuming a partial download.
#[tauri::command]
pub async fn pull_model(
    state: State<'_, AppState>,
    repo: String,
    file: String,
    on_event: Channel<Value>,
) -> CmdResult<Value> {
    // A multi-GB download must not hold the library: search, drafts and imports go on while
    // it runs. Only registering the finished file takes the library.
    let cancel = state.start_job("pull");
    let token = cancel.clone();
    let dir = state.data_dir.join("models");
    let request = models::PullRequest::new(&repo, &file);
    let pulled = tauri::async_runtime::spawn_blocking(move || {
        models::pull(&request, &dir, &progress_sink(on_event), &cancel).map_err(msg)
    })
    .await
    .map_err(msg);
    state.end_job("pull", &token);
    let (path, sha256) = pulled??;
    with_library(&state, move |lib| {
        let record =
            registry::register(lib.store(), &path, "pulled", None, Some(&sha256)).map_err(msg)?;
        serde_json::to_value(record).map_err(msg)
    })
    .await
}

/// Threads, GPU layers, author name and the data folder.
#[tauri::command]
pub async fn settings(state: State<'_, AppState>) -> CmdResult<AppSettings> {
    with_library(&state, |lib| read_settings(lib)).await
}

/// Save threads, GPU layers and the author name (models reload on the next draft).
#[tauri::command]
pub async fn save_settings(state: State<'_, AppState>, settings: AppSettings) -> CmdResult<()> {
    with_library(&state, move |lib| {
        let store = lib.store();
        store
            .set_setting("app.threads", &settings.threads.to_string())
            .map_err(msg)?;
        match settings.gpu_layers {
            Some(n) => store.set_setting("app.gpu_layers", &n.to_string()),
            None => store.delete_setting("app.gpu_layers"),
        }
        .map_err(msg)?;
        store
            .set_setting("app.author", settings.author.trim())
            .map_err(msg)
    })
    .await
}

/// The newest dataset: its stats and a few examples (None before the first build).
#[tauri::command]
pub async fn dataset_summary(state: State<'_, AppState>) -> CmdResult<Value> {
    with_library(&state, |lib| match Dataset::load(lib.store(), None) {
        Ok(d) => Ok(json!({
            "record": d.record,
            "examples": d.examples.iter().filter(|e| e.kind == "user").take(5).collect::<Vec<_>>(),
        })),
        Err(train::TrainError::NoDataset) => Ok(Value::Null),
        Err(e) => Err(msg(e)),
    })
    .await
}

/// Build a new dataset version from the library with the active chat model.
#[tauri::command]
pub async fn build_dataset(
    state: State<'_, AppState>,
    on_event: Channel<Value>,
) -> CmdResult<Value> {
    with_job(&state, "dataset", move |lib, c| {
        let settings = read_settings(lib)?;
        let record = models::resolve_chat_model(lib.store(), None).map_err(msg)?;
        let chat = models::load_chat_model(&record, &settings.chat_config()).map_err(msg)?;
        let templates = Templates::load(Some(&lib.data_dir().join("templates"))).map_err(msg)?;
        let params = DatasetParams {
            author: settings.author,
            ..Default::default()
        };
        let sink = progress_sink(on_event);
        let d = train::dataset::build(
            lib.store_mut(),
            &chat,
            &record.sha256,
            &templates,
            &params,
            &sink,
            c,
        )
        .map_err(msg)?;
        serde_json::to_value(d.record).map_err(msg)
    })
    .await
}

/// What the Train screen lets the user choose; everything else keeps `TrainParams`' defaults.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainOptions {
    /// Passes over the examples at most.
    epochs: Option<f64>,
    /// Optimizer steps at most.
    max_steps: Option<usize>,
    /// Adapter rank.
    rank: Option<usize>,
}

impl TrainOptions {
    fn params(self) -> TrainParams {
        let mut p = TrainParams::default();
        if let Some(e) = self.epochs.filter(|e| e.is_finite() && *e > 0.0) {
            p.epochs = e;
        }
        p.max_steps = self.max_steps.filter(|s| *s > 0);
        if let Some(r) = self.rank.filter(|r| *r > 0) {
            p.lora.rank = r;
        }
        p
    }
}

/// The training plan for the newest dataset (examples, tokens, steps, memory, ETA).
#[tauri::command]
pub async fn train_plan(
    state: State<'_, AppState>,
    options: Option<TrainOptions>,
) -> CmdResult<Value> {
    with_library(&state, move |lib| {
        let record = models::resolve_chat_model(lib.store(), None).map_err(msg)?;
        let dataset = Dataset::load(lib.store(), None).map_err(msg)?;
        let plan = train::plan(
            Path::new(&record.path),
            &dataset,
            &options.unwrap_or_default().params(),
            true,
        )
        .map_err(msg)?;
        serde_json::to_value(plan).map_err(msg)
    })
    .await
}

/// Train an adapter on the newest dataset, streaming loss and evaluation events.
#[tauri::command]
pub async fn start_training(
    state: State<'_, AppState>,
    options: Option<TrainOptions>,
    on_event: Channel<Value>,
) -> CmdResult<Value> {
    let params = options.unwrap_or_default().params();
    with_job(&state, "train", move |lib, c| {
        let record = models::resolve_chat_model(lib.store(), None).map_err(msg)?;
        let dataset = Dataset::load(lib.store(), None).map_err(msg)?;
        let outcome = train::train(
            lib.store(),
            &record,
            &dataset,
            &params,
            None,
            c,
            &mut |e: TrainEvent| {
                let _ = on_event.send(json!({ "kind": "train", "event": e }));
            },
        )
        .map_err(msg)?;
        serde_json::to_value(outcome).map_err(msg)
    })
    .await
}

/// Adapters with lineage and which channel uses which.
#[tauri::command]
pub async fn list_adapters(state: State<'_, AppState>) -> CmdResult<Value> {
    with_library(&state, |lib| {
        let store = lib.store();
        let mut active = Vec::new();
        for channel in ["default", "linkedin", "x", "blog", "newsletter"] {
            if let Some(a) = store.active_adapter(channel).map_err(msg)? {
                active.push(json!({
                    "channel": channel,
                    "adapter": a.adapter.map(|x| x.id),
                    "scale": a.scale,
                }));
            }
        }
        Ok(json!({ "adapters": store.adapters().map_err(msg)?, "active": active }))
    })
    .await
}

/// Use an adapter (None: the base model) for a channel at a strength.
#[tauri::command]
pub async fn use_adapter(
    state: State<'_, AppState>,
    id: Option<i64>,
    strength: f32,
    channel: Option<String>,
) -> CmdResult<()> {
    with_library(&state, move |lib| {
        let store = lib.store();
        let channel = channel.as_deref().unwrap_or(adapters::DEFAULT_CHANNEL);
        let adapter = match id {
            Some(id) => Some(adapters::find(store, &id.to_string()).map_err(msg)?),
            None => None,
        };
        adapters::activate(store, channel, adapter.as_ref(), strength).map_err(msg)
    })
    .await
}

/// Go back to the adapter a channel used before.
#[tauri::command]
pub async fn rollback_adapter(
    state: State<'_, AppState>,
    channel: Option<String>,
) -> CmdResult<bool> {
    with_library(&state, move |lib| {
        adapters::rollback(
            lib.store(),
            channel.as_deref().unwrap_or(adapters::DEFAULT_CHANNEL),
        )
        .map_err(msg)
    })
    .await
}

/// The probability that `text` is the user's, from the classifier fitted on this library
/// (refitted when documents or chunks were added or removed). `None` for an empty library.
fn sounds_like_you(lib: &Library, cache: &ClassifierCache, text: &str) -> CmdResult<Option<f64>> {
    let stats = lib.store().stats().map_err(msg)?;
    let key = (stats.documents, stats.chunks);
    let mut cached = cache
        .lock()
        .map_err(|_| "the classifier cache is poisoned")?;
    let model = match cached.as_ref().filter(|(k, _)| *k == key) {
        Some((_, m)) => Arc::clone(m),
        None => match eval::authorship_model(lib.store()).map_err(msg)? {
            Some(m) => {
                let m = Arc::new(m);
                *cached = Some((key, Arc::clone(&m)));
                m
            }
            None => return Ok(None),
        },
    };
    Ok(Some(model.probability(text)))
}

/// Run an evaluation of the active chat model and its adapters on the newest dataset,
/// streaming progress; returns the report.
#[tauri::command]
pub async fn run_eval(
    state: State<'_, AppState>,
    drafts: Option<usize>,
    judge: Option<bool>,
    on_event: Channel<Value>,
) -> CmdResult<Value> {
    with_job(&state, "eval", move |lib, c| {
        let settings = read_settings(lib)?;
        let record = models::resolve_chat_model(lib.store(), None).map_err(msg)?;
        let config = ChatModelConfig {
            context_tokens: 4096,
            ..settings.chat_config()
        };
        let params = EvalParams {
            drafts: drafts.unwrap_or(6),
            judge: judge.unwrap_or(true),
            author: settings.author,
            ..Default::default()
        };
        let sink = progress_sink(on_event);
        let outcome = eval::run(lib, &record, &config, &params, &sink, c).map_err(msg)?;
        let summary = Summary::load(lib.store(), outcome.run).map_err(msg)?;
        eval::write_report(&summary, &lib.data_dir().join("reports")).map_err(msg)?;
        serde_json::to_value(summary).map_err(msg)
    })
    .await
}

/// Stored evaluation runs, newest first.
#[tauri::command]
pub async fn eval_runs(state: State<'_, AppState>) -> CmdResult<Value> {
    with_library(&state, |lib| {
        serde_json::to_value(lib.store().eval_runs(50).map_err(msg)?).map_err(msg)
    })
    .await
}

/// The report of one run, recomputed from its measurements.
#[tauri::command]
pub async fn eval_report(state: State<'_, AppState>, id: i64) -> CmdResult<Value> {
    with_library(&state, move |lib| {
        serde_json::to_value(Summary::load(lib.store(), id).map_err(msg)?).map_err(msg)
    })
    .await
}

/// Two runs' headline numbers side by side.
#[tauri::command]
pub async fn compare_evals(state: State<'_, AppState>, a: i64, b: i64) -> CmdResult<Value> {
    with_library(&state, move |lib| {
        serde_json::to_value(eval::report::compare_runs(lib.store(), a, b).map_err(msg)?)
            .map_err(msg)
    })
    .await
}
