//! The one service both shells drive: [`Twin`].
//!
//! A shell (the CLI, the desktop app) parses what the user asked for, calls one method here,
//! and renders what comes back. Everything that is policy rather than rendering lives here, so
//! the two shells cannot drift apart: the data folder and the library opened in it, the user's
//! [`Settings`], which chat model and adapter a command loads (and the loaded model kept
//! between drafts), the first-run set-up of the default models, the "sounds like you"
//! classifier and when it is refitted, the draft prepared while a topic is typed, and the long
//! jobs with the one token each that cancels them.
//!
//! `Twin` is `Send + Sync` and blocking: the app shares one behind an `Arc` and calls it on
//! worker threads; the CLI makes one per command. Every method returns [`TwinError`], whose
//! [`ErrorKind`](crate::error::ErrorKind) tells a cancelled run from a failed one as data.

mod autotrain;
mod bench;
mod chat;
mod drafting;
mod jobs;
mod serving;
mod settings;
mod voice;

pub use autotrain::{ActiveGuard, Activity, CycleOverrides};
pub use bench::LibraryBenchSpec;
pub use chat::{DraftingModel, ModelChoice};
pub use drafting::{DraftOutcome, DraftSetup, DraftSpec, PastDraft, Preparation};
pub use jobs::JobKind;
pub use serving::{
    ApiPreference, ApiStatus, ServedModel, Serving, ADAPTER_PREFIX, TWIN_BASE_ID, TWIN_ID,
};
pub use settings::{Settings, DEFAULT_AUTHOR};
pub use voice::{
    AdaptersOverview, DatasetOverview, Evaluated, ModelsOverview, Recommendations, TrainChoices,
};

use crate::draft::{Format, Prepared};
use crate::error::TwinError;
use crate::eval::authorship::AuthorshipModel;
use crate::first_run::{self, Needs, Provisioned};
use crate::library::{self, watch, ImportOptions, ImportReport, Library};
use crate::models::{self, registry, ModelKind};
use crate::progress::{CancelToken, Progress};
use crate::store::{LibraryStats, Store};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// How to open a [`Twin`].
#[derive(Clone, Debug, Default)]
pub struct TwinOptions {
    /// The data folder; default: [`library::default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// CPU threads for this process, over the stored setting (the CLI's `--threads`).
    pub threads: Option<usize>,
    /// More folders that may hold the embedded default models (the app bundle's resources),
    /// after the usual places (see [`first_run::search_dirs`]).
    pub model_dirs: Vec<PathBuf>,
}

/// The "sounds like you" classifier and the library size (documents, chunks) it was fitted at.
type Classifier = ((u64, u64), Arc<AuthorshipModel>);

/// Twin's engine as the shells see it. See the [module documentation](self).
pub struct Twin {
    data_dir: PathBuf,
    threads: Option<usize>,
    model_dirs: Vec<PathBuf>,
    /// Opened on first use, so that a shell starts at once.
    library: Mutex<Option<Library>>,
    /// The chat model loaded for drafting, kept while the model, adapter and settings stay.
    chat: Mutex<Option<chat::LoadedChat>>,
    /// Refitted when documents or chunks were added or removed.
    authorship: Mutex<Option<Classifier>>,
    /// The newest draft prepared while its topic was typed (see [`Twin::prepare_draft`]).
    prepared: Mutex<Option<Prepared>>,
    /// The topic and format of the preparation in flight, if one is.
    preparing: Mutex<Option<(String, Format)>>,
    jobs: jobs::Jobs,
    /// The thread following watched folders, if one runs.
    watching: Mutex<Option<CancelToken>>,
    /// Whether the user is at work (automatic training waits while they are).
    activity: Arc<Activity>,
    /// The thread that starts training cycles by itself, if one runs.
    follower: Mutex<Option<autotrain::Follower>>,
}

/// Lock `mutex`, taking it over when a thread panicked while holding it: what it guards is a
/// cache or a handle whose every write is a single assignment, and the app must keep running.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the header of every screen shows.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct Info {
    /// Twin's version.
    pub version: &'static str,
    /// The data folder.
    pub data_dir: PathBuf,
    /// What the library holds.
    pub stats: LibraryStats,
    /// The library's embedding model, if set.
    pub embedding_model: Option<String>,
    /// The active chat model, if any.
    pub chat_model: Option<String>,
}

impl Twin {
    /// A service over the data folder `options` names. Nothing is opened yet.
    pub fn open(options: TwinOptions) -> Result<Self, TwinError> {
        let data_dir = match options.data_dir {
            Some(d) => d,
            None => library::default_data_dir().ok_or_else(|| {
                TwinError::new(
                    crate::error::ErrorKind::NeedsSetup,
                    "cannot tell the platform's data folder; set TWIN_DATA_DIR (or pass --data-dir)",
                )
            })?,
        };
        Ok(Self {
            activity: Arc::new(Activity::new(&data_dir)),
            follower: Mutex::new(None),
            data_dir,
            threads: options.threads,
            model_dirs: options.model_dirs,
            library: Mutex::new(None),
            chat: Mutex::new(None),
            authorship: Mutex::new(None),
            prepared: Mutex::new(None),
            preparing: Mutex::new(None),
            jobs: jobs::Jobs::default(),
            watching: Mutex::new(None),
        })
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Run `f` with the library (opened on first use). A draft being prepared in the
    /// background holds the library for seconds, so it is cancelled first: what the user asks
    /// for now comes first.
    pub fn with_library<T>(
        &self,
        f: impl FnOnce(&mut Library) -> Result<T, TwinError>,
    ) -> Result<T, TwinError> {
        self.jobs.cancel(JobKind::Prepare);
        self.with_library_as_is(f)
    }

    /// [`Twin::with_library`], leaving a preparation in flight alone.
    fn with_library_as_is<T>(
        &self,
        f: impl FnOnce(&mut Library) -> Result<T, TwinError>,
    ) -> Result<T, TwinError> {
        let mut guard = lock(&self.library);
        if guard.is_none() {
            let settings = self.stored_settings()?;
            *guard = Some(Library::open(&self.data_dir, settings.embedder_config())?);
        }
        match guard.as_mut() {
            Some(lib) => f(lib),
            None => Err(TwinError::failed("the library could not be opened")),
        }
    }

    /// A library handle of its own (its own connection, opened with the settings), for work
    /// that holds it for long, such as following folders, or a one-shot command.
    pub fn open_library(&self) -> Result<Library, TwinError> {
        let settings = self.stored_settings()?;
        Ok(Library::open(&self.data_dir, settings.embedder_config())?)
    }

    /// The settings as stored, before this process's overrides; read without the library, which
    /// needs them to open.
    fn stored_settings(&self) -> Result<Settings, TwinError> {
        let database = self.data_dir.join(library::DATABASE_FILE);
        if !database.exists() {
            // A fresh data folder: the library creates it, with the defaults.
            return Ok(self.with_overrides(Settings {
                threads: 0,
                gpu_layers: None,
                author: DEFAULT_AUTHOR.into(),
                data_dir: self.data_dir.clone(),
            }));
        }
        Ok(self.with_overrides(Settings::load(&Store::open(&database)?)?))
    }

    fn with_overrides(&self, mut settings: Settings) -> Settings {
        if let Some(t) = self.threads {
            settings.threads = t;
        }
        settings
    }

    /// Run `f` as the cancellable job `kind` (see [`Twin::cancel`]). Any job but drafting
    /// cancels a preparation in flight; a draft decides that itself.
    pub fn run_job<T>(
        &self,
        kind: JobKind,
        f: impl FnOnce(&CancelToken) -> Result<T, TwinError>,
    ) -> Result<T, TwinError> {
        if !matches!(kind, JobKind::Prepare | JobKind::Draft) {
            self.jobs.cancel(JobKind::Prepare);
        }
        let token = self.jobs.start(kind);
        let result = f(&token);
        self.jobs.end(kind, &token);
        result
    }

    /// Cancel the running job of `kind`; whether one was running.
    pub fn cancel(&self, kind: JobKind) -> bool {
        self.jobs.cancel(kind)
    }

    /// The user's settings, with this process's overrides (`--threads`).
    pub fn settings(&self) -> Result<Settings, TwinError> {
        self.with_library(|lib| self.settings_in(lib))
    }

    /// Keep `settings`; models load with them from the next command on.
    pub fn save_settings(&self, settings: &Settings) -> Result<(), TwinError> {
        self.with_library(|lib| Ok(settings.save(lib.store())?))
    }

    fn settings_in(&self, lib: &Library) -> Result<Settings, TwinError> {
        Ok(self.with_overrides(Settings::load(lib.store())?))
    }

    /// First run: a library without models gets the embedded default models (see
    /// [`first_run`]); what was set up.
    pub fn provision(&self) -> Result<Provisioned, TwinError> {
        self.with_library(|lib| self.provision_in(lib))
    }

    fn provision_in(&self, lib: &mut Library) -> Result<Provisioned, TwinError> {
        let needs = Needs {
            embedding: true,
            chat: true,
        };
        Ok(first_run::provision(
            lib,
            &first_run::search_dirs(&self.model_dirs),
            needs,
        )?)
    }

    /// Library totals, the data folder and the models in use.
    pub fn info(&self) -> Result<Info, TwinError> {
        self.with_library(|lib| {
            let store = lib.store();
            Ok(Info {
                version: env!("CARGO_PKG_VERSION"),
                data_dir: lib.data_dir().to_path_buf(),
                stats: store.stats()?,
                embedding_model: store.embedding_model()?.map(|m| m.name),
                chat_model: registry::active(store, ModelKind::Chat)?.map(|m| m.name),
            })
        })
    }

    /// Import files and folders: the default models on first run, the user's names (Settings,
    /// plus `options.authors`) to pick their posts out of multi-author exports, then the
    /// library's incremental import.
    pub fn import(
        &self,
        paths: &[PathBuf],
        mut options: ImportOptions,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<ImportReport, TwinError> {
        let _active = self.user_activity();
        self.with_library(|lib| {
            self.provision_in(lib)?;
            let settings = self.settings_in(lib)?;
            options
                .authors
                .extend(settings.user_name().map(String::from));
            options.authors = lib.add_user_names(&options.authors)?;
            Ok(lib.import(paths, &options, progress, cancel)?)
        })
    }

    /// Add `folder` as a watched source and import it; [`Twin::follow_watched`] keeps it in
    /// step afterwards.
    pub fn add_watched(
        &self,
        folder: &Path,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<ImportReport, TwinError> {
        self.with_library(|lib| {
            lib.store().add_source(folder, true)?;
            Ok(())
        })?;
        self.import(
            &[folder.to_path_buf()],
            ImportOptions::default(),
            progress,
            cancel,
        )
    }

    /// Follow every watched folder on a thread of its own with its own connection (SQLite WAL
    /// allows it), so following never holds the library other commands use. A second call
    /// replaces the first follower (after a folder was added). Nothing starts when no folder
    /// is watched.
    pub fn follow_watched(&self, on_event: impl FnMut(watch::WatchEvent) + Send + 'static) {
        let cancel = CancelToken::new();
        if let Some(old) = lock(&self.watching).replace(cancel.clone()) {
            old.cancel();
        }
        let library = self.open_library();
        let activity = Arc::clone(&self.activity);
        std::thread::spawn(move || {
            let followed = library.map_err(|e| e.to_string()).and_then(|mut lib| {
                let watched: Vec<_> = lib
                    .folders_to_watch(&[])
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .filter(|s| s.watched)
                    .collect();
                if watched.is_empty() {
                    return Ok(());
                }
                let options = ImportOptions::default();
                watch_with(&activity, &mut lib, &watched, &options, &cancel, on_event)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = followed {
                tracing::warn!("following watched folders stopped: {e}");
            }
        });
    }

    /// Follow `sources` on `library` until `cancel` is set (what `twin watch` runs in the
    /// foreground); automatic training waits while a change is being synced.
    pub fn watch(
        &self,
        library: &mut Library,
        sources: &[crate::store::Source],
        options: &ImportOptions,
        cancel: &CancelToken,
        on_event: impl FnMut(watch::WatchEvent),
    ) -> Result<(), TwinError> {
        Ok(watch_with(
            &self.activity,
            library,
            sources,
            options,
            cancel,
            on_event,
        )?)
    }

    /// Download a GGUF from Hugging Face (resuming a partial download) and register it. The
    /// download does not hold the library: search, drafts and imports go on while it runs.
    pub fn pull_model(
        &self,
        request: &models::PullRequest,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<crate::store::ModelRecord, TwinError> {
        let (path, sha256) =
            models::pull(request, &self.data_dir.join("models"), progress, cancel)?;
        self.with_library(|lib| {
            Ok(registry::register(
                lib.store(),
                &path,
                "pulled",
                None,
                Some(&sha256),
            )?)
        })
    }

    /// The probability that `text` is the user's, from the classifier fitted on this library
    /// (refitted when documents or chunks were added or removed). `None` for an empty library.
    pub fn sounds_like_you(&self, lib: &Library, text: &str) -> Result<Option<f64>, TwinError> {
        let stats = lib.store().stats()?;
        let key = (stats.documents, stats.chunks);
        let mut cached = lock(&self.authorship);
        let model = match cached.as_ref().filter(|(k, _)| *k == key) {
            Some((_, m)) => Arc::clone(m),
            None => match crate::eval::authorship_model(lib.store())? {
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
}

/// [`watch::watch`], marking the user at work while each change is synced: a sync is the
/// user's writing arriving, and automatic training waits for it.
fn watch_with(
    activity: &Arc<Activity>,
    library: &mut Library,
    sources: &[crate::store::Source],
    options: &ImportOptions,
    cancel: &CancelToken,
    mut on_event: impl FnMut(watch::WatchEvent),
) -> Result<(), library::LibraryError> {
    let mut syncing: Option<ActiveGuard> = None;
    watch::watch(library, sources, options, cancel, |event| {
        match &event {
            watch::WatchEvent::Syncing(_) => drop(syncing.replace(activity.begin())),
            _ => drop(syncing.take()),
        }
        on_event(event)
    })
}
