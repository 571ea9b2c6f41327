//! The user's settings.

use super::*;

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
