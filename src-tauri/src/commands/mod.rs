//! The commands the UI invokes, one file per capability: each one parses its arguments, calls the core service
//! ([`Twin`]) on a blocking worker so the window never freezes, and returns what it returns.
//! Progress and streamed text go back through a `Channel` as JSON events; errors as
//! `{kind, message, path?}` ([`TwinError`]).

use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tauri::ipc::Channel;
use tauri::{Emitter, State};
use twin_core::draft::{DraftEvent, Format};
use twin_core::eval::{EvalParams, Summary};
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
    /// The local API, while the Settings switch has it on.
    api: Mutex<Option<twin_api::Server>>,
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
            api: Mutex::new(None),
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

impl AppState {
    /// What runs for as long as the window is open: the watched folders are followed, and
    /// training cycles start by themselves when the writing has grown (unless turned off in
    /// Settings). Cycles report as `autotrain` events, syncs as `library-changed`.
    pub fn start_background(&self, app: tauri::AppHandle) {
        let events = app.clone();
        self.twin.follow_watched(move |event| {
            let _ = events.emit("library-changed", format!("{event:?}"));
        });
        self.twin.follow_autotrain(move |event| {
            let _ = app.emit("autotrain", event);
        });
        // The local API comes back on if the user left it on.
        if let Ok(p) = self.twin.api_preference() {
            if p.enabled {
                if let Err(e) = serving::start_api(self, p.port) {
                    tracing::warn!("the local API did not start: {}", e.message);
                }
            }
        }
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

/// Cancel a running job.
#[tauri::command]
pub fn cancel_job(state: State<'_, AppState>, job: JobKind) -> bool {
    state.twin.cancel(job)
}

pub mod drafting;
pub mod evaluation;
pub mod library;
pub mod models;
pub mod serving;
pub mod settings;
pub mod training;
