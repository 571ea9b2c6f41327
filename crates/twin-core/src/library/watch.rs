//! Follow source folders with notify (debounced) and keep the library in step.

use super::{ImportOptions, ImportReport, Library, LibraryError};
use crate::progress::{CancelToken, NoProgress};
use crate::store::Source;
use notify_debouncer_full::notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// Events are gathered for this long after the last change before a sync runs: editors write a
/// file in several steps (temp file, rename, chmod), and one sync per save is enough.
pub const DEBOUNCE: Duration = Duration::from_millis(400);

/// What the watcher reports after each sync.
#[derive(Debug)]
pub enum WatchEvent {
    /// Watching started for these sources.
    Started(Vec<PathBuf>),
    /// These changed paths are about to be synced.
    Syncing(Vec<PathBuf>),
    /// Changed paths were synced.
    Synced(ImportReport),
    /// A sync failed; watching continues.
    Error(String),
}

/// Watch `sources` until `cancel` is set, syncing changed paths as they settle.
pub fn watch(
    library: &mut Library,
    sources: &[Source],
    options: &ImportOptions,
    cancel: &CancelToken,
    mut on_event: impl FnMut(WatchEvent),
) -> Result<(), LibraryError> {
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(DEBOUNCE, None, tx).map_err(|e| {
        LibraryError::Engine(crate::engine::EngineError::Runtime(format!(
            "file watcher: {e}"
        )))
    })?;
    for s in sources {
        // Remembered, so `twin sources` and the app can show (and later resume) what is followed.
        library.store().add_source(&s.path, true)?;
        debouncer
            .watch(&s.path, RecursiveMode::Recursive)
            .map_err(|e| {
                LibraryError::Engine(crate::engine::EngineError::Runtime(format!(
                    "{}: cannot watch: {e}",
                    s.path.display()
                )))
            })?;
    }
    on_event(WatchEvent::Started(
        sources.iter().map(|s| s.path.clone()).collect(),
    ));
    while !cancel.is_cancelled() {
        let events = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(events)) => events,
            Ok(Err(errors)) => {
                for e in errors {
                    on_event(WatchEvent::Error(e.to_string()));
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut paths: Vec<PathBuf> = events.into_iter().flat_map(|e| e.event.paths).collect();
        paths.sort();
        paths.dedup();
        for source in sources {
            let mine: Vec<PathBuf> = paths
                .iter()
                .filter(|p| p.starts_with(&source.path))
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            on_event(WatchEvent::Syncing(mine.clone()));
            match library.sync_paths(source, &mine, options, &NoProgress, cancel) {
                Ok(report) => on_event(WatchEvent::Synced(report)),
                Err(e) => on_event(WatchEvent::Error(e.to_string())),
            }
        }
    }
    Ok(())
}
