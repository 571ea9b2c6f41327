//! The Library screen: the header, imports, watched folders, sources and search.

use super::*;

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
