//! Native open and save dialogs, opened by this process so that what the user picks becomes a
//! grant (see [`crate::grants`]). The page asks for a dialog; it never opens one itself.

use std::path::PathBuf;
use tauri::State;
use tauri_plugin_dialog::{DialogExt, FilePath};

use crate::commands::AppState;

/// What the page wants the user to pick.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pick {
    /// Files to import (several).
    Files,
    /// A folder to watch.
    Folder,
    /// A GGUF model file.
    Model,
    /// Where to save a draft as Markdown.
    Save,
    /// A twin bundle to import.
    Bundle,
    /// Where to save a twin bundle.
    SaveBundle,
}

fn local(path: FilePath) -> Option<PathBuf> {
    path.into_path().ok()
}

/// Show the dialog for `what` and grant what the user picked; the picked paths (none if the
/// dialog was dismissed).
#[tauri::command]
pub async fn pick_paths(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    what: Pick,
) -> Result<Vec<String>, String> {
    let dialog = app.dialog().file();
    // The blocking calls wait for the user on this worker; the window keeps running.
    let picked: Vec<PathBuf> = tauri::async_runtime::spawn_blocking(move || match what {
        Pick::Files => dialog
            .blocking_pick_files()
            .unwrap_or_default()
            .into_iter()
            .filter_map(local)
            .collect(),
        Pick::Folder => dialog
            .blocking_pick_folder()
            .and_then(local)
            .into_iter()
            .collect(),
        Pick::Model => dialog
            .add_filter("GGUF model", &["gguf"])
            .blocking_pick_file()
            .and_then(local)
            .into_iter()
            .collect(),
        Pick::Save => dialog
            .add_filter("Markdown", &["md"])
            .set_file_name("draft.md")
            .blocking_save_file()
            .and_then(local)
            .into_iter()
            .collect(),
        Pick::Bundle => dialog
            .add_filter("Twin bundle", &[twin_core::bundle::EXTENSION])
            .blocking_pick_file()
            .and_then(local)
            .into_iter()
            .collect(),
        Pick::SaveBundle => dialog
            .add_filter("Twin bundle", &[twin_core::bundle::EXTENSION])
            .set_file_name("twin.twinpkg")
            .blocking_save_file()
            .and_then(local)
            .into_iter()
            .collect(),
    })
    .await
    .map_err(|e| e.to_string())?;
    match what {
        Pick::Save | Pick::SaveBundle => picked.iter().for_each(|p| state.grants.grant_write(p)),
        _ => state.grants.grant_read(&picked),
    }
    Ok(picked
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

/// The paths Twin was opened with, once (the page imports them as if they were dropped).
#[tauri::command]
pub fn launch_paths(state: State<'_, AppState>) -> Vec<String> {
    state
        .take_launch_paths()
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}
