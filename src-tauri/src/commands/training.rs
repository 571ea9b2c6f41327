//! The Train screen: the dataset, training, and adapters per channel.

use super::*;

/// The newest dataset: its stats and a few examples (None before the first build).
#[tauri::command]
pub async fn dataset_summary(
    state: State<'_, AppState>,
) -> CmdResult<Option<service::DatasetOverview>> {
    run(&state, |twin| twin.dataset_overview(5)).await
}

/// Build a new dataset version from the library with the active chat model.
#[tauri::command]
pub async fn build_dataset(
    state: State<'_, AppState>,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::store::DatasetRecord> {
    job(&state, JobKind::Dataset, move |twin, cancel| {
        let sink = progress_sink(on_event);
        let params = Default::default();
        Ok(twin
            .build_dataset(params, None, None, &sink, cancel)?
            .record)
    })
    .await
}

/// The training plan for the newest dataset (examples, tokens, steps, memory, ETA).
#[tauri::command]
pub async fn train_plan(
    state: State<'_, AppState>,
    options: Option<service::TrainChoices>,
) -> CmdResult<twin_core::train::TrainPlan> {
    let params = options.unwrap_or_default().params();
    run(&state, move |twin| twin.train_plan(None, None, &params)).await
}

/// Train an adapter on the newest dataset, streaming loss and evaluation events.
#[tauri::command]
pub async fn start_training(
    state: State<'_, AppState>,
    options: Option<service::TrainChoices>,
    on_event: Channel<Value>,
) -> CmdResult<twin_core::train::TrainOutcome> {
    let params = options.unwrap_or_default().params();
    job(&state, JobKind::Train, move |twin, cancel| {
        twin.train(None, None, &params, None, cancel, &mut |e: TrainEvent| {
            let _ = on_event.send(json!({ "kind": "train", "event": e }));
        })
    })
    .await
}

/// Adapters with lineage and which channel uses which.
#[tauri::command]
pub async fn list_adapters(state: State<'_, AppState>) -> CmdResult<service::AdaptersOverview> {
    run(&state, |twin| twin.adapters()).await
}

/// Use an adapter (None: the base model) for a channel at a strength.
#[tauri::command]
pub async fn use_adapter(
    state: State<'_, AppState>,
    id: Option<i64>,
    strength: f32,
    channel: Option<String>,
) -> CmdResult<()> {
    run(&state, move |twin| {
        let id = id.map(|i| i.to_string());
        twin.use_adapter(id.as_deref(), strength, channel.as_deref())
            .map(|_| ())
    })
    .await
}

/// Go back to the adapter a channel used before; whether anything changed.
#[tauri::command]
pub async fn rollback_adapter(
    state: State<'_, AppState>,
    channel: Option<String>,
) -> CmdResult<bool> {
    run(&state, move |twin| {
        Ok(twin.rollback_adapter(channel.as_deref())?.is_some())
    })
    .await
}

/// Automatic retraining: settings, the writing waiting, the cycle running and the last one.
#[tauri::command]
pub async fn autotrain_status(
    state: State<'_, AppState>,
) -> CmdResult<twin_core::autotrain::AutotrainStatus> {
    run(&state, |twin| twin.autotrain_status()).await
}

/// Every training cycle, newest first, with its scores and verdict.
#[tauri::command]
pub async fn autotrain_history(
    state: State<'_, AppState>,
    limit: usize,
) -> CmdResult<Vec<twin_core::autotrain::Cycle>> {
    run(&state, move |twin| {
        twin.autotrain_history(limit.clamp(1, 500))
    })
    .await
}

/// Keep the automatic retraining settings (turning it off stops a running cycle).
#[tauri::command]
pub async fn save_autotrain_settings(
    state: State<'_, AppState>,
    settings: twin_core::autotrain::AutotrainSettings,
) -> CmdResult<()> {
    run(&state, move |twin| twin.save_autotrain_settings(&settings)).await
}

/// Run a training cycle now ("Learn now"); its progress arrives as `autotrain` events.
#[tauri::command]
pub async fn autotrain_run(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
) -> CmdResult<twin_core::autotrain::Cycle> {
    job(&state, JobKind::Autotrain, move |twin, cancel| {
        let emit = move |e: twin_core::autotrain::AutotrainEvent| {
            let _ = app.emit("autotrain", e);
        };
        twin.autotrain_run(&Default::default(), &emit, cancel)
    })
    .await
}
