//! The Draft screen: preparing, drafting, the style card, history and Markdown export; and
//! cancelling any job.

use super::*;

/// What the Draft screen asks for.
#[derive(Debug, Deserialize)]
pub struct DraftArgs {
    topic: String,
    format: Format,
    strength: Option<f32>,
    draft_only: bool,
    seed: Option<u32>,
}

impl DraftArgs {
    fn spec(self) -> DraftSpec {
        let mut spec = DraftSpec::new(self.topic, self.format);
        spec.request.draft_only = self.draft_only;
        if let Some(seed) = self.seed {
            spec.request.sampling.seed = seed;
        }
        spec.strength = self.strength;
        spec
    }
}

/// Do a draft's retrieval and evaluate its prompt while the topic is being typed (see
/// [`Twin::prepare_draft`]).
#[tauri::command]
pub async fn prepare_draft(
    state: State<'_, AppState>,
    args: DraftArgs,
) -> CmdResult<service::Preparation> {
    let spec = args.spec();
    run(&state, move |twin| twin.prepare_draft(&spec)).await
}

/// Draft in the user's voice, streaming what it runs on, its steps and its text.
#[tauri::command]
pub async fn draft(
    state: State<'_, AppState>,
    args: DraftArgs,
    on_event: Channel<Value>,
) -> CmdResult<service::DraftOutcome> {
    let spec = args.spec();
    job(&state, JobKind::Draft, move |twin, cancel| {
        let setup = |s: &service::DraftSetup| {
            let _ = on_event.send(json!({ "kind": "model", "setup": s }));
        };
        twin.draft(&spec, cancel, setup, &mut |event: DraftEvent| {
            let _ = on_event.send(json!({ "kind": "draft", "event": event }));
        })
    })
    .await
}

/// The style card (the user's edit, else the one computed from the library).
#[tauri::command]
pub async fn style_card(state: State<'_, AppState>) -> CmdResult<twin_core::draft::StyleCard> {
    run(&state, |twin| {
        twin.with_library(|lib| Ok(twin_core::draft::style::card(lib.store())?))
    })
    .await
}

/// Save the user's edit of the style card (`None` goes back to the computed one).
#[tauri::command]
pub async fn set_style_card(state: State<'_, AppState>, text: Option<String>) -> CmdResult<()> {
    run(&state, move |twin| {
        twin.with_library(|lib| {
            Ok(twin_core::draft::style::set_card(
                lib.store(),
                text.as_deref(),
            )?)
        })
    })
    .await
}

/// Past drafts (the stored traces), newest first.
#[tauri::command]
pub async fn draft_history(
    state: State<'_, AppState>,
    limit: usize,
) -> CmdResult<Vec<service::PastDraft>> {
    run(&state, move |twin| twin.draft_history(limit)).await
}

/// Write a draft as Markdown with front matter to the file the user picked in the save dialog.
#[tauri::command]
pub async fn export_markdown(
    state: State<'_, AppState>,
    path: String,
    topic: String,
    format: Format,
    text: String,
) -> CmdResult<()> {
    let target = state.grants.writable(&path)?;
    let markdown = twin_core::draft::markdown(&topic, format, &text, twin_core::store::now_secs());
    std::fs::write(&target, markdown)
        .map_err(|e| TwinError::about(twin_core::ErrorKind::Io, &target, e))
}

/// Keep the user's final text for a draft they edited (copied, exported or marked final).
#[tauri::command]
pub async fn record_final(
    state: State<'_, AppState>,
    trace_id: i64,
    text: String,
) -> CmdResult<Option<twin_core::store::DraftEdit>> {
    run(&state, move |twin| twin.record_final(trace_id, &text)).await
}

/// Ideas from the user's themes for the Draft screen's Ideas panel (cancellable as a draft).
#[tauri::command]
pub async fn ideas(
    state: State<'_, AppState>,
    themes: usize,
) -> CmdResult<twin_core::draft::ideas::Ideas> {
    job(&state, JobKind::Draft, move |twin, cancel| {
        twin.ideas(themes, cancel)
    })
    .await
}
