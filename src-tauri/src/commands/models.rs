//! Models: registered, discovered, recommended, added, pulled and chosen.

use super::*;

/// Registered models, the active ones, and models found in Ollama and LM Studio.
#[tauri::command]
pub async fn list_models(state: State<'_, AppState>) -> CmdResult<service::ModelsOverview> {
    let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
    let overview = run(&state, move |twin| twin.models(home.as_deref())).await?;
    // Twin found these itself: the page may ask to register them.
    state
        .grants
        .grant_read(overview.discovered.iter().map(|d| &d.path));
    Ok(overview)
}

/// Register a GGUF file (picked in the open dialog, or found in Ollama / LM Studio) in place.
#[tauri::command]
pub async fn add_model(
    state: State<'_, AppState>,
    path: String,
    origin: Option<String>,
) -> CmdResult<twin_core::store::ModelRecord> {
    let path = state.grants.readable(&path)?;
    run(&state, move |twin| {
        twin.add_model(&path, origin.as_deref().unwrap_or("added"), None)
    })
    .await
}

/// Make a registered model the active one of its kind.
#[tauri::command]
pub async fn use_model(state: State<'_, AppState>, id: i64) -> CmdResult<()> {
    run(&state, move |twin| {
        twin.use_model(&id.to_string()).map(|_| ())
    })
    .await
}

/// Twin's model catalog judged against this computer (see `twin_core::models::catalog`): the pick first.
#[tauri::command]
pub async fn recommended_models(state: State<'_, AppState>) -> CmdResult<service::Recommendations> {
    run(&state, |twin| twin.recommendations()).await
}

/// Download a GGUF from Hugging Face (`HF_ENDPOINT` honoured), resuming a partial download.
#[tauri::command]
pub async fn pull_model(
    state: State<'_, AppState>,
    repo: String,
    file: String,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::store::ModelRecord> {
    let request = twin_core::models::PullRequest::new(&repo, &file);
    job(&state, JobKind::Pull, move |twin, cancel| {
        twin.pull_model(&request, &progress_sink(on_event), cancel)
    })
    .await
}
