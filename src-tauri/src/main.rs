//! Twin's desktop shell: a Tauri v2 window over twin-core.
//!
//! Thin by design: each command parses its arguments, runs twin-core on a blocking worker (so
//! the window never freezes), streams progress and tokens through a `Channel`, and maps errors
//! to `{kind, message, path?}` objects the UI receives as data. No business logic lives here or in `ui/`.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod grants;
mod pickers;

fn main() {
    // Started as a PDF worker (a child of an import): extract and exit, before anything else.
    twin_core::library::parse::worker::serve_if_asked();
    // Sets environment variables, so it comes before any thread starts.
    twin_core::train::configure_process();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TWIN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let context = tauri::generate_context!();
    // The app bundle's resources hold the default models for a first run.
    let bundled =
        tauri::utils::platform::resource_dir(context.package_info(), &tauri::Env::default())
            .ok()
            .map(|d| d.join("models"));
    let state = match commands::AppState::new(bundled) {
        Ok(s) => {
            s.opened_with(grants::launch_paths());
            s
        }
        Err(e) => {
            eprintln!("twin: {e}");
            std::process::exit(1);
        }
    };
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .manage(state)
        .setup(|app| {
            use tauri::Manager;
            app.state::<commands::AppState>()
                .start_background(app.handle().clone());
            Ok(())
        })
        // A drop is the user choosing files: granted here, before the page hears of it.
        .on_window_event(|window, event| {
            if let tauri::WindowEvent::DragDrop(tauri::DragDropEvent::Drop { paths, .. }) = event {
                use tauri::Manager;
                window
                    .state::<commands::AppState>()
                    .grants
                    .grant_read(paths);
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::library::app_info,
            commands::library::import_paths,
            commands::library::watch_folder,
            commands::library::list_sources,
            commands::library::search,
            commands::drafting::draft,
            commands::drafting::prepare_draft,
            commands::cancel_job,
            commands::drafting::style_card,
            commands::drafting::set_style_card,
            commands::drafting::draft_history,
            commands::drafting::export_markdown,
            commands::drafting::record_final,
            commands::drafting::ideas,
            commands::models::list_models,
            commands::models::add_model,
            commands::models::use_model,
            commands::models::pull_model,
            commands::models::recommended_models,
            commands::settings::settings,
            commands::settings::save_settings,
            commands::serving::api_status,
            commands::serving::set_api,
            commands::serving::bundle_export,
            commands::serving::bundle_import,
            commands::training::dataset_summary,
            commands::training::build_dataset,
            commands::training::train_plan,
            commands::training::start_training,
            commands::training::list_adapters,
            commands::training::use_adapter,
            commands::training::rollback_adapter,
            commands::training::autotrain_status,
            commands::training::autotrain_history,
            commands::training::save_autotrain_settings,
            commands::training::autotrain_run,
            commands::evaluation::run_eval,
            commands::evaluation::eval_runs,
            commands::evaluation::eval_report,
            commands::evaluation::compare_evals,
            pickers::pick_paths,
            pickers::launch_paths,
        ])
        .run(context);
    if let Err(e) = result {
        eprintln!("twin: the window could not start: {e}");
        std::process::exit(1);
    }
}
