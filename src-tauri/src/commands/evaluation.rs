//! The Evaluate screen: runs, reports and comparisons.

use super::*;

/// Run an evaluation of the active chat model and its adapters on the newest dataset,
/// streaming progress; returns the report.
#[tauri::command]
pub async fn run_eval(
    state: State<'_, AppState>,
    drafts: Option<usize>,
    judge: Option<bool>,
    on_event: Channel<Value>,
) -> CmdResult<Summary> {
    let mut params = EvalParams::default();
    params.drafts = drafts.unwrap_or(params.drafts);
    params.judge = judge.unwrap_or(params.judge);
    job(&state, JobKind::Eval, move |twin, cancel| {
        let sink = progress_sink(on_event);
        Ok(twin
            .evaluate(params, None, None, None, &sink, cancel)?
            .summary)
    })
    .await
}

/// Stored evaluation runs, newest first.
#[tauri::command]
pub async fn eval_runs(
    state: State<'_, AppState>,
) -> CmdResult<Vec<twin_core::store::EvalRunRecord>> {
    run(&state, |twin| {
        twin.with_library(|lib| Ok(lib.store().eval_runs(50)?))
    })
    .await
}

/// The report of one run, recomputed from its measurements.
#[tauri::command]
pub async fn eval_report(state: State<'_, AppState>, id: i64) -> CmdResult<Summary> {
    run(&state, move |twin| {
        twin.with_library(|lib| Ok(Summary::load(lib.store(), id)?))
    })
    .await
}

/// Two runs' headline numbers side by side.
#[tauri::command]
pub async fn compare_evals(
    state: State<'_, AppState>,
    a: i64,
    b: i64,
) -> CmdResult<Vec<twin_core::eval::report::ComparedMetric>> {
    run(&state, move |twin| {
        twin.with_library(|lib| Ok(twin_core::eval::report::compare_runs(lib.store(), a, b)?))
    })
    .await
}
