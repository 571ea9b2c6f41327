//! The writing library: the feature pipeline that turns the user's files into searchable,
//! embedded chunks in the store.
//!
//! `scan` → `parse` → `clean` → `chunk` → store, then `embed` the pending chunks. [`Library`] is
//! the narrow API the shells use: import, sync, watch, search, status.

pub mod chunk;
pub mod clean;
pub mod dedup;
pub mod export;
pub mod parse;
pub mod scan;
mod sync;
pub mod watch;

pub use sync::{ExportSummary, FileIssue, ImportOptions, ImportReport};

use crate::engine::embed::PendingEmbedding;
use crate::engine::{Embedder, EmbedderConfig, EngineError, Reranker};
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use crate::search::{self, SearchQuery, SearchResult};
use crate::store::{ChunkId, Source, Store, StoreError, StoredModel};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name of the library database inside the data folder.
pub const DATABASE_FILE: &str = "library.sqlite3";

/// Settings key of the user's names and handles (a JSON list).
const USER_NAMES_KEY: &str = "library.authors";

/// Errors from library operations.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The inference runtime failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A search failed.
    #[error(transparent)]
    Search(#[from] search::SearchError),
    /// No embedding model was chosen yet.
    #[error("{}", search::NO_EMBEDDING_MODEL)]
    NoEmbeddingModel,
    /// A path given by the user does not exist.
    #[error("{0}: no such file or folder")]
    NotFound(PathBuf),
    /// The recorded embedding model file is gone.
    #[error("{0}: the library's embedding model file is missing; import it again with `twin models import`")]
    ModelFileMissing(PathBuf),
    /// The path is the whole computer or a system folder, not a folder of writing.
    #[error("{0}: a system folder (the whole disk, /proc, /sys, /dev…), not writing; import the folders that hold your writing")]
    SystemFolder(PathBuf),
}

crate::error::classify!(LibraryError {
    kind: Self::NoEmbeddingModel | Self::ModelFileMissing(_) => NeedsSetup,
        Self::NotFound(_) => NotFound, Self::SystemFolder(_) => BadInput;
    inner: Store, Engine, Search;
    path: Self::NotFound(p) | Self::ModelFileMissing(p) | Self::SystemFolder(p) => p.as_path();
});

/// The platform's data folder for Twin (on Linux `~/.local/share/twin`), where both shells keep
/// the library when no other is named (`--data-dir`, `TWIN_DATA_DIR`). `None` when the platform
/// has no home folder to put it in.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("app", "Twin", "twin").map(|p| p.data_dir().to_path_buf())
}

/// Whether `path` (canonical) is the file-system root or a folder of the system's own: a
/// link to `/` given by mistake would otherwise scan millions of files, and /proc's files
/// never end.
fn is_system_folder(path: &Path) -> bool {
    path.parent().is_none()
        || ["/proc", "/sys", "/dev", "/run", "/boot"]
            .iter()
            .any(|sys| path.starts_with(sys))
}

/// The user's library: a store plus the embedding model its vectors come from.
pub struct Library {
    store: Store,
    embedder: Option<Arc<Embedder>>,
    /// The reranker last asked for, by file, so drafts do not reload it.
    reranker: Option<(PathBuf, Arc<Reranker>)>,
    embed_config: EmbedderConfig,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// What an embedding pass did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EmbedReport {
    /// Chunks embedded.
    pub chunks: usize,
    /// Tokens fed to the model.
    pub tokens: usize,
    /// Wall time of the pass.
    pub seconds: f64,
    /// Whether it stopped early because it was cancelled.
    pub cancelled: bool,
}

impl Library {
    /// Open the library in `data_dir` (created if needed).
    pub fn open(data_dir: &Path, embed_config: EmbedderConfig) -> Result<Self, LibraryError> {
        let store = Store::open(&data_dir.join(DATABASE_FILE))?;
        Ok(Self {
            store,
            embedder: None,
            reranker: None,
            embed_config,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The store, for read-only queries.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, for benchmarks and maintenance that write directly.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The embedding model, loaded on first use from the path the store records.
    pub fn embedder(&mut self) -> Result<Arc<Embedder>, LibraryError> {
        if let Some(e) = &self.embedder {
            return Ok(Arc::clone(e));
        }
        let model = self
            .store
            .embedding_model()?
            .ok_or(LibraryError::NoEmbeddingModel)?;
        let path = PathBuf::from(&model.path);
        if !path.exists() {
            return Err(LibraryError::ModelFileMissing(path));
        }
        let embedder = Arc::new(Embedder::load(&path, &self.embed_config)?);
        if embedder.identity().hash != model.hash {
            // The file changed under us: treat it as a new model, so vectors never mix.
            self.store.set_embedding_model(&stored_model(&embedder))?;
        }
        self.embedder = Some(Arc::clone(&embedder));
        Ok(embedder)
    }

    /// The GGUF reranker at `path`, loaded once and kept while the same file is asked for.
    pub fn reranker_at(&mut self, path: &Path) -> Result<Arc<Reranker>, LibraryError> {
        if let Some((p, r)) = &self.reranker {
            if p == path {
                return Ok(Arc::clone(r));
            }
        }
        if !path.exists() {
            return Err(LibraryError::ModelFileMissing(path.to_path_buf()));
        }
        let reranker = Arc::new(Reranker::load(path, &self.embed_config)?);
        self.reranker = Some((path.to_path_buf(), Arc::clone(&reranker)));
        Ok(reranker)
    }

    /// Use the GGUF embedding model at `path` for this library. Returns true when this replaced
    /// another model, which drops every vector so the next import re-embeds everything.
    pub fn set_embedding_model(&mut self, path: &Path) -> Result<bool, LibraryError> {
        let embedder = Arc::new(Embedder::load(path, &self.embed_config)?);
        let reset = self.store.set_embedding_model(&stored_model(&embedder))?;
        self.embedder = Some(embedder);
        Ok(reset)
    }

    /// Add `paths` as sources (or find the source they lie in) and bring them up to date: new and
    /// changed files are parsed and chunked, deleted ones removed, then pending chunks embedded.
    /// Every path is checked before anything is imported, so a missing one imports nothing.
    pub fn import(
        &mut self,
        paths: &[PathBuf],
        options: &ImportOptions,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<ImportReport, LibraryError> {
        let mut scopes = Vec::new();
        for path in paths {
            let path =
                std::fs::canonicalize(path).map_err(|_| LibraryError::NotFound(path.clone()))?;
            if is_system_folder(&path) {
                return Err(LibraryError::SystemFolder(path));
            }
            let existing = self
                .store
                .sources()?
                .into_iter()
                .find(|s| path.starts_with(&s.path));
            let source = match existing {
                Some(s) => s,
                None => self.store.add_source(&path, false)?,
            };
            let scope = if path == source.path {
                Vec::new()
            } else {
                vec![path]
            };
            scopes.push((source, scope));
        }
        self.sync_scopes(&scopes, options, progress, cancel)
    }

    /// Sync only `paths` (files or folders, existing or deleted) inside `source`; used by watch.
    pub fn sync_paths(
        &mut self,
        source: &Source,
        paths: &[PathBuf],
        options: &ImportOptions,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<ImportReport, LibraryError> {
        self.sync_scopes(
            &[(source.clone(), paths.to_vec())],
            options,
            progress,
            cancel,
        )
    }

    /// Sync each source within its scope (empty: the whole source), then embed what waits.
    fn sync_scopes(
        &mut self,
        scopes: &[(Source, Vec<PathBuf>)],
        options: &ImportOptions,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<ImportReport, LibraryError> {
        let embedder = self.embedder()?;
        let mut report = ImportReport::default();
        let started = std::time::Instant::now();
        for (source, scope) in scopes {
            let part = sync::sync(
                &mut self.store,
                &embedder,
                source,
                scope,
                options,
                progress,
                cancel,
            )?;
            report.merge(part);
            if cancel.is_cancelled() {
                break;
            }
        }
        if options.embed && !cancel.is_cancelled() {
            let e = self.embed_pending(options.embed_batch, progress, cancel)?;
            report.chunks_embedded = e.chunks;
            report.cancelled |= e.cancelled;
        }
        report.cancelled |= cancel.is_cancelled();
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The user's names and handles (settings key `library.authors`), after adding `more`:
    /// what a multi-author export's posts are matched against.
    pub fn add_user_names(&self, more: &[String]) -> Result<Vec<String>, LibraryError> {
        let mut names: Vec<String> = self
            .store
            .setting(USER_NAMES_KEY)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        let before = names.len();
        for n in more.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if !names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
                names.push(n.to_string());
            }
        }
        if names.len() != before {
            let json = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
            self.store.set_setting(USER_NAMES_KEY, &json)?;
        }
        Ok(names)
    }

    /// Embed every chunk still without a vector, in batches, committing after each batch so a
    /// crash or cancel loses at most one batch of work.
    pub fn embed_pending(
        &mut self,
        batch: usize,
        progress: &dyn Progress,
        cancel: &CancelToken,
    ) -> Result<EmbedReport, LibraryError> {
        let embedder = self.embedder()?;
        let _span = tracing::info_span!("embed").entered();
        let started = std::time::Instant::now();
        let total = self.store.pending_count()?;
        let mut report = EmbedReport::default();
        progress.report(ProgressEvent {
            stage: Stage::Embed,
            done: 0,
            total,
            item: None,
        });
        // With a core to spare, one batch stays in flight: while the worker embeds it, this
        // thread writes the previous batch's vectors and reads and tokenises the next, so the
        // embedder never waits for SQLite. When llama.cpp has every core, this thread's work
        // would only take turns with its threads (`twin bench library` on 2 cores: the ratio to
        // bare llama.cpp fell from 94–96% to 65–90%), so each batch is written before the next
        // is read. Reads move past the ids in flight (they have no vector yet).
        let overlap = self.embed_config.threads < crate::engine::default_threads();
        let mut in_flight: Option<(Vec<ChunkId>, PendingEmbedding)> = None;
        let mut after: ChunkId = 0;
        loop {
            let next = if cancel.is_cancelled() {
                report.cancelled = true;
                Vec::new()
            } else {
                self.store.pending_chunks_after(after, batch.max(1))?
            };
            let submitted = match next.last() {
                None => None,
                Some(last) => {
                    after = last.id;
                    let inputs: Vec<String> = next
                        .iter()
                        .map(|c| chunk::embedding_input(&c.title, &c.heading_path, &c.text))
                        .collect();
                    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                    let ids = next.iter().map(|c| c.id).collect();
                    Some((ids, embedder.submit(&refs)?))
                }
            };
            let mut write = |(ids, job): (Vec<ChunkId>, PendingEmbedding)| {
                report.tokens += job.tokens();
                let rows: Vec<_> = ids.into_iter().zip(job.wait()?).collect();
                self.store.put_vectors(&embedder.identity().hash, &rows)?;
                report.chunks += rows.len();
                progress.report(ProgressEvent {
                    stage: Stage::Embed,
                    done: report.chunks as u64,
                    total,
                    item: None,
                });
                Ok::<_, LibraryError>(())
            };
            if let Some(previous) = in_flight.take() {
                write(previous)?;
            }
            match submitted {
                None => break,
                Some(job) if overlap => in_flight = Some(job),
                Some(job) => write(job)?,
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Search the library.
    pub fn search(&mut self, query: &SearchQuery) -> Result<Vec<SearchResult>, LibraryError> {
        let embedder = match query.mode {
            search::SearchMode::Bm25 => None,
            _ => Some(self.embedder()?),
        };
        Ok(search::run(&self.store, embedder.as_deref(), query)?)
    }

    /// The sources, with counts.
    pub fn sources(&self) -> Result<Vec<Source>, LibraryError> {
        Ok(self.store.sources()?)
    }

    /// The folder sources to follow: those `paths` lie in, or every one when `paths` is empty.
    /// A source that is a file (not a folder) is not followed.
    pub fn folders_to_watch(&self, paths: &[PathBuf]) -> Result<Vec<Source>, LibraryError> {
        let wanted: Vec<PathBuf> = paths
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        Ok(self
            .sources()?
            .into_iter()
            .filter(|s| {
                s.path.is_dir()
                    && (wanted.is_empty() || wanted.iter().any(|w| w.starts_with(&s.path)))
            })
            .collect())
    }

    /// Forget the source named by `which` (its id, or its path as given or as stored) and
    /// everything imported from it; the source as it was.
    pub fn remove_source(&mut self, which: &str) -> Result<Source, LibraryError> {
        let wanted = std::path::Path::new(which);
        let canonical = std::fs::canonicalize(wanted).ok();
        let source = self
            .store
            .sources()?
            .into_iter()
            .find(|s| {
                which.parse::<i64>().is_ok_and(|id| id == s.id)
                    || s.path == wanted
                    || canonical.as_deref() == Some(s.path.as_path())
            })
            .ok_or_else(|| LibraryError::NotFound(wanted.to_path_buf()))?;
        self.store.remove_source(source.id)?;
        Ok(source)
    }
}

fn stored_model(e: &Embedder) -> StoredModel {
    let id = e.identity();
    StoredModel {
        name: id.name.clone(),
        hash: id.hash.clone(),
        dim: id.dim,
        path: e.path().to_string_lossy().into_owned(),
    }
}
