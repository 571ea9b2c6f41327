//! The twin outside the window: the local API's switch, and twin bundles.

use super::*;
use twin_core::service::{ApiPreference, ApiStatus};

/// Start the API on `port` (0: any), replacing a running one.
pub(crate) fn start_api(state: &AppState, port: u16) -> CmdResult<()> {
    let mut api = state
        .api
        .lock()
        .map_err(|_| TwinError::failed("the API's state is unavailable"))?;
    if let Some(old) = api.take() {
        old.stop();
    }
    let server = twin_api::Server::start(Arc::clone(&state.twin), port)
        .map_err(|e| TwinError::new(twin_core::ErrorKind::Busy, e.to_string()))?;
    *api = Some(server);
    Ok(())
}

fn status(state: &AppState) -> CmdResult<ApiStatus> {
    let preference = state.twin.api_preference()?;
    let api = state
        .api
        .lock()
        .map_err(|_| TwinError::failed("the API's state is unavailable"))?;
    Ok(ApiStatus {
        preference,
        base_url: api.as_ref().map(twin_api::Server::base_url),
        token: api.as_ref().map(|s| s.token().to_string()),
        token_file: state.twin.data_dir().join(twin_api::token::TOKEN_FILE),
    })
}

/// Whether the local API runs, its address and token.
#[tauri::command]
pub fn api_status(state: State<'_, AppState>) -> CmdResult<ApiStatus> {
    status(&state)
}

/// Turn the local API on (on `port`; 0: one the system picks) or off, and keep the choice.
#[tauri::command]
pub fn set_api(state: State<'_, AppState>, enabled: bool, port: u16) -> CmdResult<ApiStatus> {
    if enabled {
        start_api(&state, port)?;
    } else if let Some(old) = state.api.lock().ok().and_then(|mut a| a.take()) {
        old.stop();
    }
    state
        .twin
        .set_api_preference(&ApiPreference { enabled, port })?;
    status(&state)
}

/// Export the twin to `path` (picked in a save dialog), with the library if asked.
#[tauri::command]
pub async fn bundle_export(
    state: State<'_, AppState>,
    path: String,
    with_library: bool,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::bundle::Exported> {
    let target = state.grants.writable(&path)?;
    job(&state, JobKind::Bundle, move |twin, cancel| {
        twin.export_bundle(&target, with_library, &progress_sink(on_event), cancel)
    })
    .await
}

/// Import the twin bundle at `path` (picked), on the base model at `model` if the user pointed
/// at one.
#[tauri::command]
pub async fn bundle_import(
    state: State<'_, AppState>,
    path: String,
    model: Option<String>,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::bundle::Imported> {
    let bundle = state.grants.readable(&path)?;
    let model = model.map(|m| state.grants.readable(&m)).transpose()?;
    job(&state, JobKind::Bundle, move |twin, cancel| {
        twin.import_bundle(&bundle, model.as_deref(), &progress_sink(on_event), cancel)
    })
    .await
}
