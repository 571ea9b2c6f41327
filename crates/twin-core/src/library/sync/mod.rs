//! Incremental sync of one source: only changed files are read, parsed and chunked.
//!
//! Change detection: mtime+size is the fast path; when either differs the file is hashed with
//! blake3, and only a different hash means a re-parse. A stored file that is gone but whose bytes
//! reappear at a new path is a rename: the document moves and keeps its chunks and vectors.
//! Bad files are reported with a reason and never disturb what is already stored.

use super::chunk::{self, ChunkConfig};
use super::clean;
use super::dedup::{self, NearDuplicateIndex};
use super::export::{self, Body, ExportItem};
use super::parse::{self, Block, Format, ParseError, ParsedDoc};
use super::scan::{self, Candidate};
use crate::engine::Embedder;
use crate::progress::{CancelToken, Progress, ProgressEvent, Stage};
use crate::store::{DocState, DocumentInfo, NewDocument, Source, Store, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

mod document;
use document::*;

/// How to import.
#[derive(Clone, Debug, Serialize)]
pub struct ImportOptions {
    /// Files larger than this are skipped with a reason.
    pub max_file_size: u64,
    /// Chunk sizes.
    pub chunking: ChunkConfig,
    /// Embed new chunks after parsing (off for a parse-only pass).
    pub embed: bool,
    /// Chunks per embedding call (and per commit).
    pub embed_batch: usize,
    /// The user's names and handles: in a multi-author export (WordPress, Ghost) only their
    /// posts are theirs. Empty: a single-author export is taken whole, a multi-author one is
    /// refused with the list of its authors.
    pub authors: Vec<String>,
    /// Import unpublished drafts from exports too.
    pub include_drafts: bool,
    /// Import static pages (About, Contact) from WordPress and Ghost exports too.
    pub include_pages: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            max_file_size: 20 * 1024 * 1024,
            chunking: ChunkConfig::default(),
            embed: true,
            embed_batch: 64,
            authors: Vec::new(),
            include_drafts: false,
            include_pages: false,
        }
    }
}

/// A file that was skipped or failed, with the reason.
#[derive(Clone, Debug, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct FileIssue {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// What an import or sync did.
#[derive(Clone, Debug, Default, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ImportReport {
    /// Files looked at.
    pub scanned: usize,
    /// New documents.
    pub added: usize,
    /// Documents re-parsed because their file changed.
    pub updated: usize,
    /// Files whose content did not change.
    pub unchanged: usize,
    /// Documents moved to a new path (chunks kept).
    pub renamed: usize,
    /// Documents removed because their file is gone.
    pub deleted: usize,
    /// Byte-identical copies of another document (stored, not chunked).
    pub duplicates: usize,
    /// Documents flagged as near-duplicates (e.g. drafts of the same post).
    pub near_duplicates: usize,
    /// Chunks written.
    pub chunks_written: usize,
    /// Chunks that kept their vector because their text did not change.
    pub vectors_reused: usize,
    /// Chunks embedded.
    pub chunks_embedded: usize,
    /// Files deliberately not imported (unsupported type, too large, empty, noindex…).
    pub skipped: Vec<FileIssue>,
    /// Files that could not be read or parsed.
    pub failed: Vec<FileIssue>,
    /// Whether the run was cancelled before finishing.
    pub cancelled: bool,
    /// Platform exports read, one entry each.
    pub exports: Vec<ExportSummary>,
    /// Wall time.
    pub seconds: f64,
}

/// What one platform export gave.
#[derive(Clone, Debug, Default, Serialize, ts_rs::TS)]
#[ts(export)]
pub struct ExportSummary {
    /// The zip, folder or file.
    pub path: PathBuf,
    /// `linkedin`, `x`, `medium`, `substack`, `wordpress` or `ghost`.
    pub platform: String,
    /// New documents by kind (post, article, thread…).
    pub added: BTreeMap<String, usize>,
    /// Items whose text changed since the last import, re-chunked.
    pub updated: usize,
    /// Items already stored with the same text.
    pub unchanged: usize,
    /// Items left out, by reason (retweets, reposts, drafts, other authors…).
    pub skipped: BTreeMap<String, usize>,
    /// Parts of the export that could not be read, named inside it.
    pub failed: Vec<export::PartError>,
}

impl ImportReport {
    /// Count one stored document: new or updated, with its chunks.
    fn count_stored(&mut self, updated: bool, chunks: usize, reused: usize, near_duplicate: bool) {
        if updated {
            self.updated += 1;
        } else {
            self.added += 1;
        }
        self.chunks_written += chunks;
        self.vectors_reused += reused;
        self.near_duplicates += usize::from(near_duplicate);
    }

    pub(super) fn merge(&mut self, o: ImportReport) {
        self.scanned += o.scanned;
        self.added += o.added;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.renamed += o.renamed;
        self.deleted += o.deleted;
        self.duplicates += o.duplicates;
        self.near_duplicates += o.near_duplicates;
        self.chunks_written += o.chunks_written;
        self.vectors_reused += o.vectors_reused;
        self.chunks_embedded += o.chunks_embedded;
        self.skipped.extend(o.skipped);
        self.failed.extend(o.failed);
        self.cancelled |= o.cancelled;
        self.exports.extend(o.exports);
    }
}

/// Sync `source`, limited to `scope` (files or folders inside it; empty means the whole source).
pub(super) fn sync(
    store: &mut Store,
    embedder: &Embedder,
    source: &Source,
    scope: &[PathBuf],
    options: &ImportOptions,
    progress: &dyn Progress,
    cancel: &CancelToken,
) -> Result<ImportReport, StoreError> {
    let _span = tracing::info_span!("sync", source = %source.path.display()).entered();
    let mut report = ImportReport::default();
    let roots: Vec<PathBuf> = if scope.is_empty() {
        vec![source.path.clone()]
    } else {
        // A change inside an unpacked export re-reads that export, not the one file.
        scope
            .iter()
            .map(|p| enclosing_export(p, &source.path).unwrap_or_else(|| p.clone()))
            .collect()
    };
    let ignore_root = if source.path.is_dir() {
        source.path.clone()
    } else {
        source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };

    // 1. Scan.
    progress.report(ProgressEvent {
        stage: Stage::Scan,
        done: 0,
        total: 0,
        item: Some(source.path.display().to_string()),
    });
    let mut files: Vec<Candidate> = Vec::new();
    // Paths the scan could not read (permission denied, I/O errors): what is stored under them
    // is kept, since "could not read" is not "deleted".
    let mut unreadable: Vec<PathBuf> = Vec::new();
    for root in &roots {
        if !root.exists() {
            continue; // deleted: handled below as missing
        }
        if root != &ignore_root && scan::is_excluded(root, &ignore_root) {
            continue;
        }
        let found = {
            let _s = tracing::info_span!("scan", root = %root.display()).entered();
            scan::scan(root, &ignore_root, options.max_file_size)
        };
        unreadable.extend(found.issues.iter().map(|i| i.path.clone()));
        report
            .skipped
            .extend(found.issues.into_iter().map(|i| FileIssue {
                path: i.path,
                reason: i.reason,
            }));
        files.extend(found.files);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    // A whole source that is missing or empty while the library holds its writing is far more
    // often an unmounted drive or share (or a cloud folder not synced yet) than years of
    // writing deleted at once: keep what is stored and say so. Files deleted one by one still
    // leave the library.
    if roots.contains(&source.path) && files.is_empty() && unreadable.is_empty() {
        let held = store.documents_under(&roots)?.len();
        if held > 0 {
            unreadable.push(source.path.clone());
            report.skipped.push(FileIssue {
                path: source.path.clone(),
                reason: format!(
                    "the folder is missing or empty (an unmounted drive or share?); its {held} documents are kept. If you deleted it, run `twin sources --remove {}`",
                    source.path.display()
                ),
            });
        }
    }
    report.scanned = files.len();
    progress.report(ProgressEvent {
        stage: Stage::Scan,
        done: files.len() as u64,
        total: files.len() as u64,
        item: None,
    });

    // 2. What is stored under the scope, and which of it is gone from disk.
    let stored: HashMap<PathBuf, DocState> = store
        .documents_under(&roots)?
        .into_iter()
        .map(|d| (d.path.clone(), d))
        .collect();
    let seen: std::collections::HashSet<&Path> = files.iter().map(|f| f.path.as_path()).collect();
    let mut missing_by_hash: HashMap<String, Vec<DocState>> = HashMap::new();
    for doc in stored.values().filter(|d| {
        !seen.contains(d.path.as_path()) && under(&d.path, &roots) && !under(&d.path, &unreadable)
    }) {
        missing_by_hash
            .entry(doc.content_hash.clone())
            .or_default()
            .push(doc.clone());
    }

    let mut near = NearDuplicateIndex::default();
    for (id, h) in store.simhashes()? {
        near.insert(id, h);
    }
    let mut syncer = Syncer {
        store,
        embedder,
        source,
        options,
        near,
    };

    // 3. New and changed files.
    let total = files.len() as u64;
    for (i, file) in files.iter().enumerate() {
        if cancel.is_cancelled() {
            report.cancelled = true;
            return Ok(report);
        }
        progress.report(ProgressEvent {
            stage: Stage::Parse,
            done: i as u64,
            total,
            item: Some(file.path.display().to_string()),
        });
        if export::may_be_export(&file.path) {
            let _s = tracing::info_span!("export", path = %file.path.display()).entered();
            if syncer.process_export(file, &mut report)?.is_some() {
                continue;
            }
        }
        let known = stored.get(&file.path);
        if let Some(doc) = known {
            if doc.mtime == file.mtime && doc.size == file.size as i64 {
                report.unchanged += 1;
                continue;
            }
        }
        let _s = tracing::debug_span!("file", path = %file.path.display()).entered();
        let bytes = match read_bounded(&file.path, syncer.options.max_file_size) {
            Ok(Some(b)) => b,
            Ok(None) => {
                report.skipped.push(FileIssue {
                    path: file.path.clone(),
                    reason: format!(
                        "grew past the {} MiB size limit while it was being read",
                        syncer.options.max_file_size / 1048576
                    ),
                });
                continue;
            }
            Err(e) => {
                let reason = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    "permission denied".to_string()
                } else {
                    e.to_string()
                };
                report.failed.push(FileIssue {
                    path: file.path.clone(),
                    reason,
                });
                continue;
            }
        };
        let hash = blake3::hash(&bytes).to_hex().to_string();
        if let Some(doc) = known {
            if doc.content_hash == hash {
                syncer
                    .store
                    .touch_document(doc.id, file.mtime, file.size as i64)?;
                report.unchanged += 1;
                continue;
            }
        } else if let Some(moved) = missing_by_hash.get_mut(&hash).and_then(Vec::pop) {
            syncer.store.move_document(
                moved.id,
                source.id,
                &file.path,
                file.mtime,
                file.size as i64,
            )?;
            report.renamed += 1;
            continue;
        }
        match syncer.process(file, &bytes, hash)? {
            Outcome::Stored {
                chunks,
                reused,
                near_duplicate,
                duplicate,
            } => {
                report.count_stored(known.is_some(), chunks, reused, near_duplicate);
                if duplicate {
                    report.duplicates += 1;
                    report.skipped.push(FileIssue {
                        path: file.path.clone(),
                        reason: "exact duplicate of another document".into(),
                    });
                }
            }
            Outcome::Skipped(reason) => report.skipped.push(FileIssue {
                path: file.path.clone(),
                reason,
            }),
            Outcome::Failed(reason) => report.failed.push(FileIssue {
                path: file.path.clone(),
                reason,
            }),
        }
    }
    progress.report(ProgressEvent {
        stage: Stage::Parse,
        done: total,
        total,
        item: None,
    });

    // 4. Files gone from disk leave both indexes. A copy that was a duplicate of a deleted
    //    document becomes a document in its own right.
    let mut promote = Vec::new();
    for doc in missing_by_hash.into_values().flatten() {
        promote.extend(syncer.store.duplicates_of(doc.id)?);
        syncer.store.delete_document(doc.id)?;
        syncer.near.remove(doc.id);
        report.deleted += 1;
    }
    for dup in promote {
        if let Ok(Some(bytes)) = read_bounded(&dup.path, syncer.options.max_file_size) {
            let file = Candidate {
                path: dup.path.clone(),
                size: dup.size as u64,
                mtime: dup.mtime,
            };
            let hash = blake3::hash(&bytes).to_hex().to_string();
            if let Outcome::Stored { chunks, .. } = syncer.process(&file, &bytes, hash)? {
                report.chunks_written += chunks;
            }
        }
    }
    if scope.is_empty() {
        syncer.store.mark_synced(source.id)?;
    }
    Ok(report)
}

/// A file's bytes, at most `limit` of them: the scan checked its size, but a file can grow
/// (a log, a sync in progress) before it is read. `None` when it is now over the limit.
fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

#[cfg(test)]
mod tests;
