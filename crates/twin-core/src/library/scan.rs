//! Find candidate files under a path: walkdir, skipping hidden files and whatever a
//! `.twinignore` (gitignore syntax) at the root excludes, surviving symlink loops, and applying a
//! size limit. Files that cannot be taken are reported with a reason, never silently dropped.

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// Name of the ignore file read at the root of each source.
pub const IGNORE_FILE: &str = ".twinignore";

/// A file found by the scan, with the stamps the incremental sync compares.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Absolute path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime: i64,
}

/// The largest zip (a platform export) the scan passes on.
const ZIP_EXPORT_LIMIT: u64 = 64 * 1024 * 1024 * 1024;

fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// A path the scan could not take, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScanIssue {
    /// The path.
    pub path: PathBuf,
    /// Why it was not taken.
    pub reason: String,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Files to look at, sorted by path.
    pub files: Vec<Candidate>,
    /// Paths skipped with a reason.
    pub issues: Vec<ScanIssue>,
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.len() > 1)
}

fn ignore_matcher(root: &Path) -> Gitignore {
    let dir = if root.is_dir() {
        root
    } else {
        root.parent().unwrap_or(root)
    };
    let mut builder = GitignoreBuilder::new(dir);
    let file = dir.join(IGNORE_FILE);
    if file.exists() {
        if let Some(e) = builder.add(&file) {
            tracing::warn!(file = %file.display(), error = %e, "ignore file has errors");
        }
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// Modification time in nanoseconds since the epoch (0 if the platform cannot tell).
pub fn mtime_nanos(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Walk `root` (a folder or a single file) and collect candidate files no larger than `max_size`.
pub fn scan(root: &Path, ignore_root: &Path, max_size: u64) -> ScanResult {
    let matcher = ignore_matcher(ignore_root);
    let mut result = ScanResult::default();
    let walker = WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    let walker = walker.filter_entry(|e| {
        e.depth() == 0
            || (!is_hidden(e.path())
                && !matcher
                    .matched(e.path(), e.file_type().is_dir())
                    .is_ignore())
    });
    let mut walker = walker;
    while let Some(entry) = walker.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let reason = if let Some(ancestor) = e.loop_ancestor() {
                    format!("symlink loop back to {}", ancestor.display())
                } else if let Some(io) = e.io_error() {
                    match io.kind() {
                        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                        std::io::ErrorKind::NotFound => {
                            "broken symlink or file vanished".to_string()
                        }
                        _ => io.to_string(),
                    }
                } else {
                    e.to_string()
                };
                result.issues.push(ScanIssue { path, reason });
                continue;
            }
        };
        if entry.file_type().is_dir() {
            // An unpacked platform export is read as one (its CSVs and scripts are not files
            // to import one by one).
            if super::export::is_export_folder(entry.path()) {
                let mtime = entry.metadata().map(|m| mtime_nanos(&m)).unwrap_or(0);
                result.files.push(Candidate {
                    path: entry.path().to_path_buf(),
                    size: 0,
                    mtime,
                });
                walker.skip_current_dir();
            }
            continue;
        }
        if !entry.file_type().is_file() {
            // A pipe, socket or device named like a document: reading it could block forever
            // or never end, so it is reported, not opened.
            if !entry.file_type().is_symlink() {
                result.issues.push(ScanIssue {
                    path: entry.path().to_path_buf(),
                    reason: "not a regular file (a pipe, socket or device); not read".into(),
                });
            }
            continue;
        }
        let path = entry.path().to_path_buf();
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                result.issues.push(ScanIssue {
                    path,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        // A zipped export is opened, not read whole: only its writing is unpacked, each part
        // capped (export::archive), so the archive itself may be large (X archives hold media).
        let limit = if is_zip(&path) {
            ZIP_EXPORT_LIMIT
        } else {
            max_size
        };
        if meta.len() > limit {
            result.issues.push(ScanIssue {
                path,
                reason: format!(
                    "{:.1} MiB is over the {:.0} MiB size limit",
                    meta.len() as f64 / 1048576.0,
                    limit as f64 / 1048576.0
                ),
            });
            continue;
        }
        result.files.push(Candidate {
            path,
            size: meta.len(),
            mtime: mtime_nanos(&meta),
        });
    }
    result
}

/// Whether `path` (below `root`) is hidden or ignored by the root's `.twinignore`; used for paths
/// that arrive one by one from the file watcher rather than from a walk.
pub fn is_excluded(path: &Path, root: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    if rel.components().any(|c| {
        c.as_os_str()
            .to_str()
            .is_some_and(|n| n.starts_with('.') && n.len() > 1)
    }) {
        return true;
    }
    ignore_matcher(root)
        .matched_path_or_any_parents(path, path.is_dir())
        .is_ignore()
}
