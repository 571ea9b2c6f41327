//! `twin`: the command line, a thin shell over twin-core.

mod autotrain_cmd;
mod bench_cmd;
mod bundle_cmd;
mod draft_cmd;
mod eval_cmd;
mod ideas_cmd;
mod library_cmd;
mod models_cmd;
mod progress_bar;
mod serve_cmd;
mod train_cmd;

use anyhow::{Context, Result};
use bench_cmd::BenchCommand;
use clap::{Parser, Subcommand};
use library_cmd::{ImportArgs, ImportFlags, SearchArgs};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::{CancelToken, Library, Twin, TwinError, TwinOptions};

/// Exit codes, so scripts can tell outcomes apart.
pub(crate) mod exit {
    /// Some files could not be imported (each is listed with its reason); the rest were.
    pub const PARTIAL: u8 = 3;
    /// Stopped by Ctrl-C; what finished is kept and a re-run resumes.
    pub const CANCELLED: u8 = 130;
}

#[derive(Parser)]
#[command(
    name = "twin",
    version,
    about = "Twin: an offline writing twin that learns your voice"
)]
pub(crate) struct Cli {
    /// Data folder (library database and models). Default: the platform's app-data folder.
    #[arg(long, global = true, env = "TWIN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// CPU threads for llama.cpp (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import files or folders into the library (only changed files are processed again).
    Import(ImportArgs),
    /// Follow folders and keep the library in step with them.
    Watch {
        /// Folders to watch; they are imported first. Default: every source in the library.
        paths: Vec<PathBuf>,
        #[command(flatten)]
        import: ImportFlags,
    },
    /// List the library's sources.
    Sources {
        /// Forget a source (by its id or path) and everything imported from it.
        #[arg(long, value_name = "ID|PATH")]
        remove: Option<String>,
    },
    /// Show what the library holds.
    Status {
        /// Also check the library file: SQLite's integrity check, the search index, and one
        /// vector per embedded chunk (reads the whole file; exits 1 if anything is wrong).
        #[arg(long)]
        check: bool,
    },
    /// Search the library.
    Search(SearchArgs),
    /// Manage models: list, add, pull from Hugging Face, use models from Ollama and LM Studio.
    #[command(subcommand)]
    Models(models_cmd::ModelsCommand),
    /// Draft a post, thread, article or newsletter in your voice, with citations.
    Draft(Box<draft_cmd::DraftArgs>),
    /// Ideas for what to write next: your recurring themes, angles you have not taken, themes
    /// you have left for long, each with the passages it came from.
    Ideas(ideas_cmd::IdeasArgs),
    /// Browse stored drafting runs: prompts, retrieved chunks, model, timings.
    Traces {
        #[command(subcommand)]
        command: Option<draft_cmd::TracesCommand>,
        /// Runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Record the text you made of a draft (after editing it elsewhere): Twin keeps the pair
    /// to learn from your edits.
    Feedback {
        /// The draft's trace id (`twin traces`).
        trace: i64,
        /// The file holding your final text.
        #[arg(long = "final", value_name = "FILE")]
        final_text: PathBuf,
    },
    /// The drafts you edited: what Twin wrote and what you made of it.
    Drafts {
        /// Drafts to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show or edit your style card (how your writing sounds, used in every draft).
    Style(draft_cmd::StyleArgs),
    /// Build, inspect and export training datasets made from your own writing.
    #[command(subcommand)]
    Dataset(train_cmd::DatasetCommand),
    /// Fine-tune a LoRA voice adapter on your writing (resumes an interrupted run).
    Train(Box<train_cmd::TrainArgs>),
    /// Manage voice adapters: list, use (per channel, at a strength), roll back, remove.
    #[command(subcommand)]
    Adapters(train_cmd::AdaptersCommand),
    /// Evaluate: held-out perplexity, style distance, "sounds like you", retrieval, a local
    /// judge; writes an HTML + JSON report. `--compare A B` puts two runs side by side.
    Eval(Box<eval_cmd::EvalArgs>),
    /// Automatic retraining: status, run, enable, disable, history.
    #[command(subcommand)]
    Autotrain(autotrain_cmd::AutotrainCommand),
    /// Measure speed, memory and quality; prints a table.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Move the twin to another machine: export it to one file, import it there.
    #[command(subcommand)]
    Bundle(bundle_cmd::BundleCommand),
    /// Serve the twin to other tools: an OpenAI-compatible API on 127.0.0.1, with a token.
    Serve(serve_cmd::ServeArgs),
}

/// The service over the data folder `--data-dir` names, with `--threads` over the setting.
pub(crate) fn service(cli: &Cli) -> Result<Twin> {
    Ok(Twin::open(TwinOptions {
        data_dir: cli.data_dir.clone(),
        threads: cli.threads,
        ..Default::default()
    })?)
}

/// A library handle for one command.
pub(crate) fn open_library(cli: &Cli) -> Result<Library> {
    let twin = service(cli)?;
    twin.open_library()
        .with_context(|| format!("opening the library in {}", twin.data_dir().display()))
}

pub(crate) fn print_json(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn cancel_on_ctrl_c() -> CancelToken {
    let cancel = CancelToken::new();
    let c = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if c.is_cancelled() {
            std::process::exit(i32::from(exit::CANCELLED));
        }
        eprintln!("\nstopping after the current step… (Ctrl-C again to quit at once)");
        c.cancel();
    });
    cancel
}

/// First run: a library without models gets the embedded defaults (see
/// `twin_core::first_run`), and the terminal is told.
pub(crate) fn provision(cli: &Cli, twin: &Twin) -> Result<()> {
    let done = twin.provision()?;
    if !cli.json {
        if let Some(p) = &done.embedding {
            eprintln!(
                "first run: set up the default embedding model ({})",
                p.display()
            );
        }
        if let Some(p) = &done.chat {
            eprintln!(
                "first run: registered the default chat model ({})",
                p.display()
            );
        }
    }
    Ok(())
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Import(args) => library_cmd::import(cli, args),
        Command::Watch { paths, import } => library_cmd::watch_cmd(cli, paths, import),
        Command::Sources { remove } => library_cmd::sources(cli, remove.as_deref()),
        Command::Status { check } => library_cmd::status(cli, *check),
        Command::Search(args) => library_cmd::search(cli, args),
        Command::Models(cmd) => models_cmd::run(cli, cmd),
        Command::Draft(args) => draft_cmd::draft_cmd(cli, args),
        Command::Traces { command, limit } => draft_cmd::traces_cmd(cli, command, *limit),
        Command::Style(args) => draft_cmd::style_cmd(cli, args),
        Command::Feedback { trace, final_text } => draft_cmd::feedback_cmd(cli, *trace, final_text),
        Command::Drafts { limit } => draft_cmd::drafts_cmd(cli, *limit),
        Command::Dataset(cmd) => train_cmd::dataset_cmd(cli, cmd),
        Command::Train(args) => train_cmd::train_cmd(cli, args),
        Command::Adapters(cmd) => train_cmd::adapters_cmd(cli, cmd),
        Command::Eval(args) => eval_cmd::eval_cmd(cli, args),
        Command::Autotrain(cmd) => autotrain_cmd::run(cli, cmd),
        Command::Bench(cmd) => bench_cmd::bench(cli, cmd),
        Command::Serve(args) => serve_cmd::serve_cmd(cli, args),
        Command::Ideas(args) => ideas_cmd::ideas_cmd(cli, args),
        Command::Bundle(cmd) => bundle_cmd::bundle_cmd(cli, cmd),
    }
}

/// What a cancelled command kept, and how to go on.
fn resume_hint(command: &Command) -> &'static str {
    match command {
        Command::Draft(_) => "the partial run is stored; see `twin traces`",
        Command::Dataset(_) => "instructions written so far are kept, so a rebuild continues",
        Command::Train(_) => {
            "the last checkpoint is kept and `twin train` with the same settings resumes from it"
        }
        Command::Eval(_) => "measurements so far are kept, and the same command resumes",
        Command::Models(_) => "a partial download is kept, and the same command resumes it",
        Command::Autotrain(_) => {
            "the cycle is kept and resumes with `twin autotrain run` or `twin watch`"
        }
        _ => "finished work is kept; run the same command again to resume",
    }
}

fn main() -> ExitCode {
    // Started as a PDF worker (a child of an import): extract and exit, before anything else.
    twin_core::library::parse::worker::serve_if_asked();
    // Sets environment variables, so it comes before any thread starts.
    twin_core::train::configure_process();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TWIN_LOG")
                .unwrap_or_else(|_| "warn,llama-cpp-2=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        // One outcome for every cancelled command: what finished is kept, and the same command
        // resumes.
        Err(e)
            if e.downcast_ref::<TwinError>()
                .is_some_and(TwinError::is_cancelled) =>
        {
            eprintln!("\ncancelled: {}", resume_hint(&cli.command));
            ExitCode::from(exit::CANCELLED)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
