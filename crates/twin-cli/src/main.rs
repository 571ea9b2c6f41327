//! `twin`: the command line, a thin shell over twin-core.

mod draft_cmd;
mod eval_cmd;
mod models_cmd;
mod progress_bar;
mod train_cmd;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use twin_core::engine::EmbedderConfig;
use twin_core::library::watch::{self, WatchEvent};
use twin_core::store::SearchFilter;
use twin_core::{CancelToken, ImportOptions, ImportReport, Library, SearchMode, SearchQuery};

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
    /// Browse stored drafting runs: prompts, retrieved chunks, model, timings.
    Traces {
        #[command(subcommand)]
        command: Option<draft_cmd::TracesCommand>,
        /// Runs to list.
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
    /// Measure speed and memory; prints a table.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The writing library: parse/chunk/embed throughput, embedding efficiency, search latency.
    Library {
        /// Large folder for the parse-only pass. Default: the Rust toolchain's HTML docs.
        #[arg(long)]
        tree: Option<PathBuf>,
        /// Smaller folder imported with embedding. Default: the Rust Book.
        #[arg(long)]
        subset: Option<PathBuf>,
        /// Library sizes (chunks) for search latency, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<usize>,
        /// Queries per size.
        #[arg(long, default_value_t = 50)]
        queries: usize,
        /// Run only these parts (parse, pipeline, embed, search), comma-separated.
        #[arg(long, value_delimiter = ',')]
        only: Vec<twin_core::bench::BenchPart>,
    },
    /// Drafting: decode speed against bare llama.cpp, first-token latency, chain steps.
    Draft {
        /// Tokens generated per decode measurement.
        #[arg(long, default_value_t = 256)]
        tokens: usize,
        /// Repetitions of each first-token measurement.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Writing for the scratch library. Default: the sample writing.
        #[arg(long)]
        writing: Option<PathBuf>,
        #[command(flatten)]
        model: draft_cmd::ModelArgs,
    },
    /// Draft quality: drafts fixed topics in every format with each chain on your library and
    /// the active model (and adapter), and counts the publishable ones (draft health).
    Quality(draft_cmd::QualityArgs),
    /// Voice training: tokens/s and peak RSS of LoRA steps on the newest dataset.
    Train {
        /// Steps to time (after one warm-up step).
        #[arg(long, default_value_t = 6)]
        steps: usize,
        /// Targets, as for `twin train`.
        #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
        targets: Vec<twin_core::train::Target>,
        /// Tokens per packed sequence.
        #[arg(long, default_value_t = 512)]
        sequence_tokens: usize,
    },
}

#[derive(Args)]
struct ImportArgs {
    /// Files or folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    flags: ImportFlags,
}

#[derive(Args, Clone)]
struct ImportFlags {
    /// Parse and chunk only; embed later.
    #[arg(long)]
    no_embed: bool,
    /// Skip files larger than this many MiB (zipped platform exports excepted).
    #[arg(long, default_value_t = 20)]
    max_file_mib: u64,
    /// Your name or handle as a multi-author export (WordPress, Ghost) shows it; only those
    /// posts are imported as yours. Repeat for several; remembered for later imports.
    #[arg(long = "author", value_name = "NAME")]
    authors: Vec<String>,
    /// Also import unpublished drafts from platform exports.
    #[arg(long)]
    include_drafts: bool,
    /// Also import static pages (About, Contact) from WordPress and Ghost exports.
    #[arg(long)]
    include_pages: bool,
}

impl ImportFlags {
    /// Options for an import, with the user's names remembered in the library (`--author`
    /// adds to them).
    fn options(&self, library: &Library) -> Result<ImportOptions> {
        let authors = library.add_user_names(&self.authors)?;
        Ok(ImportOptions {
            max_file_size: self.max_file_mib * 1024 * 1024,
            embed: !self.no_embed,
            authors,
            include_drafts: self.include_drafts,
            include_pages: self.include_pages,
            ..Default::default()
        })
    }
}

#[derive(Args)]
struct SearchArgs {
    /// What to look for.
    query: String,
    /// bm25, vector or hybrid.
    #[arg(long, default_value = "hybrid")]
    mode: SearchMode,
    /// Results to show.
    #[arg(short = 'k', long, default_value_t = 5)]
    limit: usize,
    /// Only this source (its path or id).
    #[arg(long)]
    source: Option<String>,
    /// Only this platform (linkedin, x, medium, substack, wordpress, ghost, or a front-matter
    /// platform such as blog or newsletter).
    #[arg(long)]
    platform: Option<String>,
    /// Only this kind of writing (post, article, newsletter, thread, reply, comment, page).
    #[arg(long)]
    kind: Option<String>,
    /// Only documents dated on or after YYYY-MM-DD.
    #[arg(long)]
    from: Option<String>,
    /// Only documents dated on or before YYYY-MM-DD.
    #[arg(long)]
    to: Option<String>,
}

pub(crate) fn data_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(d) = &cli.data_dir {
        return Ok(d.clone());
    }
    twin_core::library::default_data_dir()
        .context("cannot tell the platform's data folder; pass --data-dir")
}

pub(crate) fn open_library(cli: &Cli) -> Result<Library> {
    let mut config = EmbedderConfig::default();
    if let Some(t) = cli.threads {
        config.threads = t;
    }
    let dir = data_dir(cli)?;
    Library::open(&dir, config).with_context(|| format!("opening the library in {}", dir.display()))
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

fn print_report(r: &ImportReport) {
    println!(
        "{} files: {} added, {} updated, {} unchanged, {} renamed, {} deleted; {} chunks written, {} embedded ({} kept their vectors) in {:.1}s",
        r.scanned, r.added, r.updated, r.unchanged, r.renamed, r.deleted, r.chunks_written, r.chunks_embedded, r.vectors_reused, r.seconds
    );
    if r.near_duplicates > 0 {
        println!("{} near-duplicate documents flagged", r.near_duplicates);
    }
    for e in &r.exports {
        print_export(e);
    }
    for s in &r.skipped {
        println!("skipped {}: {}", s.path.display(), s.reason);
    }
    for f in &r.failed {
        eprintln!("error   {}: {}", f.path.display(), f.reason);
    }
    if r.cancelled {
        println!("cancelled: finished work is kept; run the same command again to resume");
    }
}

/// One export's lines: what was imported per kind, and what was left out and why.
fn print_export(e: &twin_core::library::ExportSummary) {
    let added: Vec<String> = e
        .added
        .iter()
        .map(|(kind, n)| match (*n, kind.as_str()) {
            (1, _) => format!("1 {kind}"),
            (_, "reply") => format!("{n} replies"),
            _ => format!("{n} {kind}s"),
        })
        .collect();
    println!(
        "{:<9} {}: {} new{}; {} updated, {} unchanged",
        e.platform,
        e.path.display(),
        e.added.values().sum::<usize>(),
        if added.is_empty() {
            String::new()
        } else {
            format!(" ({})", added.join(", "))
        },
        e.updated,
        e.unchanged
    );
    for (reason, n) in &e.skipped {
        println!("{:<9}   left out {n}: {reason}", "");
    }
}

fn report_exit(r: &ImportReport) -> ExitCode {
    if r.cancelled {
        ExitCode::from(exit::CANCELLED)
    } else if !r.failed.is_empty() {
        ExitCode::from(exit::PARTIAL)
    } else {
        ExitCode::SUCCESS
    }
}

/// First run: a library without models gets the embedded defaults (see
/// `twin_core::first_run`), and the terminal is told.
pub(crate) fn provision_defaults(
    cli: &Cli,
    library: &mut Library,
    needs: twin_core::first_run::Needs,
) -> Result<()> {
    use twin_core::first_run;
    let done = first_run::provision(library, &first_run::search_dirs(&[]), needs)?;
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

fn import(cli: &Cli, args: &ImportArgs) -> Result<ExitCode> {
    let mut library = open_library(cli)?;
    provision_defaults(
        cli,
        &mut library,
        twin_core::first_run::Needs {
            // Chunks are cut by the embedding model's tokens, so even `--no-embed` needs it.
            embedding: true,
            chat: true,
        },
    )?;
    let bar = progress_bar::Bar::new(!cli.json);
    let cancel = cancel_on_ctrl_c();
    let options = args.flags.options(&library)?;
    let report = library.import(&args.paths, &options, &bar, &cancel)?;
    bar.finish();
    if cli.json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(report_exit(&report))
}

fn watch_cmd(cli: &Cli, paths: &[PathBuf], flags: &ImportFlags) -> Result<ExitCode> {
    let mut library = open_library(cli)?;
    provision_defaults(
        cli,
        &mut library,
        twin_core::first_run::Needs {
            // Chunks are cut by the embedding model's tokens, so even `--no-embed` needs it.
            embedding: true,
            chat: true,
        },
    )?;
    let cancel = cancel_on_ctrl_c();
    let options = flags.options(&library)?;
    if !paths.is_empty() {
        let bar = progress_bar::Bar::new(!cli.json);
        let report = library.import(paths, &options, &bar, &cancel)?;
        bar.finish();
        if !cli.json {
            print_report(&report);
        }
    }
    let wanted: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let sources: Vec<_> = library
        .sources()?
        .into_iter()
        .filter(|s| {
            s.path.is_dir() && (wanted.is_empty() || wanted.iter().any(|w| w.starts_with(&s.path)))
        })
        .collect();
    anyhow::ensure!(
        !sources.is_empty(),
        "no folders to watch: import a folder first or name one"
    );
    let json = cli.json;
    watch::watch(
        &mut library,
        &sources,
        &options,
        &cancel,
        |event| match event {
            WatchEvent::Started(paths) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"event": "started", "paths": paths})
                    );
                } else {
                    for p in paths {
                        println!("watching {}", p.display());
                    }
                }
            }
            WatchEvent::Synced(report) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"event": "synced", "report": report})
                    );
                } else {
                    print_report(&report);
                }
            }
            WatchEvent::Error(e) => {
                if json {
                    println!("{}", serde_json::json!({"event": "error", "message": e}));
                } else {
                    eprintln!("error: {e}");
                }
            }
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn sources(cli: &Cli, remove: Option<&str>) -> Result<ExitCode> {
    let mut library = open_library(cli)?;
    if let Some(which) = remove {
        let gone = library.remove_source(which)?;
        println!(
            "removed source {} ({}) and its {} documents",
            gone.id,
            gone.path.display(),
            gone.documents
        );
        return Ok(ExitCode::SUCCESS);
    }
    let sources = library.sources()?;
    if cli.json {
        print_json(&sources)?;
    } else if sources.is_empty() {
        println!("no sources yet: twin import <folder>");
    } else {
        for s in sources {
            println!(
                "{:>3}  {}  {} documents, {} chunks{}{}",
                s.id,
                s.path.display(),
                s.documents,
                s.chunks,
                if s.pending_chunks > 0 {
                    format!(" ({} waiting for embedding)", s.pending_chunks)
                } else {
                    String::new()
                },
                if s.watched { ", watched" } else { "" }
            );
            for p in s.by_platform.iter().filter(|p| p.platform != "files") {
                println!("       {:<9} {:<10} {}", p.platform, p.kind, p.documents);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(cli: &Cli, check: bool) -> Result<ExitCode> {
    let library = open_library(cli)?;
    let stats = library.store().stats()?;
    let consistency = check.then(|| library.store().check()).transpose()?;
    let code = match &consistency {
        Some(c) if !c.ok => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    };
    if cli.json {
        let mut out = serde_json::json!({"data_dir": library.data_dir(), "library": stats});
        if let Some(c) = &consistency {
            out["check"] = serde_json::to_value(c)?;
        }
        print_json(&out)?;
        return Ok(code);
    }
    {
        println!("data folder     {}", library.data_dir().display());
        println!("sources         {}", stats.sources);
        println!(
            "documents       {} ({} exact duplicates, {} near-duplicates)",
            stats.documents, stats.duplicates, stats.near_duplicates
        );
        println!(
            "chunks          {} ({} embedded)",
            stats.chunks, stats.embedded_chunks
        );
        if stats.by_platform.iter().any(|p| p.platform != "files") {
            let per: Vec<String> = stats
                .by_platform
                .iter()
                .map(|p| format!("{} {} {}", p.platform, p.kind, p.documents))
                .collect();
            println!("by platform     {}", per.join(", "));
        }
        match &stats.embedding_model {
            Some(m) => println!("embedding model {} ({} dims, {})", m.name, m.dim, m.path),
            None => println!("embedding model none: twin models import <folder>"),
        }
        println!(
            "database        {:.1} MiB",
            stats.database_bytes as f64 / 1048576.0
        );
    }
    if let Some(c) = &consistency {
        println!(
            "check           {}: integrity {}, search index {} ({} of {} chunks), {} vectors for {} embedded chunks{}",
            if c.ok { "ok" } else { "PROBLEMS" },
            c.integrity,
            c.fts_integrity,
            c.fts_rows,
            c.chunks,
            c.vectors,
            c.embedded_chunks,
            if c.orphan_vectors + c.embedded_without_vector > 0 {
                format!(
                    ", {} vectors without a chunk, {} embedded chunks without a vector",
                    c.orphan_vectors, c.embedded_without_vector
                )
            } else {
                String::new()
            }
        );
    }
    Ok(code)
}

fn search(cli: &Cli, args: &SearchArgs) -> Result<ExitCode> {
    let mut library = open_library(cli)?;
    let source = match &args.source {
        None => None,
        Some(s) => {
            let sources = library.sources()?;
            let path = std::fs::canonicalize(s).unwrap_or_else(|_| PathBuf::from(s));
            Some(
                sources
                    .iter()
                    .find(|x| x.id.to_string() == *s || x.path == path)
                    .map(|x| x.id)
                    .with_context(|| format!("no source {s:?}; see `twin sources`"))?,
            )
        }
    };
    let query = SearchQuery {
        text: args.query.clone(),
        mode: args.mode,
        filter: SearchFilter {
            source,
            platform: args.platform.clone(),
            kind: args.kind.clone(),
            date_from: args.from.clone(),
            date_to: args.to.clone(),
        },
        limit: args.limit,
    };
    let results = library.search(&query)?;
    if cli.json {
        print_json(&results)?;
    } else if results.is_empty() {
        println!("no results");
    } else {
        for (i, r) in results.iter().enumerate() {
            let heading = if r.hit.heading_path.is_empty() {
                String::new()
            } else {
                format!(" › {}", r.hit.heading_path)
            };
            println!(
                "{}. {}{}  [{:.4}]",
                i + 1,
                r.hit.path.display(),
                heading,
                r.score
            );
            println!("   {}", r.snippet);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rust_docs() -> Result<PathBuf> {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc")?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("share/doc/rust/html"))
}

pub(crate) fn print_table(rows: &[twin_core::bench::BenchRow]) {
    let w = rows
        .iter()
        .map(|r| r.metric.chars().count())
        .max()
        .unwrap_or(10);
    let v = rows
        .iter()
        .map(|r| r.value.chars().count())
        .max()
        .unwrap_or(10);
    println!("| {:w$} | {:v$} | note |", "metric", "value");
    println!("|{}|{}|------|", "-".repeat(w + 2), "-".repeat(v + 2));
    for r in rows {
        println!("| {:w$} | {:v$} | {} |", r.metric, r.value, r.note);
    }
}

fn bench_draft(
    cli: &Cli,
    tokens: usize,
    runs: usize,
    writing: &Option<PathBuf>,
    model: &draft_cmd::ModelArgs,
) -> Result<ExitCode> {
    let library = open_library(cli)?;
    let embedding = library
        .store()
        .embedding_model()?
        .context("no embedding model: run `twin models import models/all-MiniLM-L6-v2` first")?;
    let chat = match &model.model {
        Some(q) => twin_core::models::registry::find(library.store(), q)?,
        None => twin_core::models::registry::active(
            library.store(),
            twin_core::models::ModelKind::Chat,
        )?
        .context(
            "no chat model: run `twin models add models/SmolLM2-135M-Instruct.Q4_1.gguf` first",
        )?,
    };
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let writing = match writing {
        Some(w) => w.clone(),
        None => std::env::current_dir()?.join("assets/sample-writing"),
    };
    anyhow::ensure!(
        writing.exists(),
        "{}: no such folder; pass --writing",
        writing.display()
    );
    let spec = twin_core::bench::draft::DraftBench {
        model: PathBuf::from(chat.path),
        config: model.config(cli),
        embedding_model: PathBuf::from(embedding.path),
        writing,
        scratch: scratch.path().join("library"),
        tokens,
        runs,
    };
    let rows = twin_core::bench::draft::draft(&spec)?;
    if cli.json {
        print_json(&rows)?;
    } else {
        print_table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(cli: &Cli, cmd: &BenchCommand) -> Result<ExitCode> {
    let (tree, subset, sizes, queries, only) = match cmd {
        BenchCommand::Library {
            tree,
            subset,
            sizes,
            queries,
            only,
        } => (tree, subset, sizes, queries, only),
        BenchCommand::Draft {
            tokens,
            runs,
            writing,
            model,
        } => return bench_draft(cli, *tokens, *runs, writing, model),
        BenchCommand::Train {
            steps,
            targets,
            sequence_tokens,
        } => return train_cmd::bench_train(cli, *steps, targets, *sequence_tokens),
        BenchCommand::Quality(args) => return draft_cmd::bench_quality(cli, args),
    };
    let library = open_library(cli)?;
    let model = library
        .store()
        .embedding_model()?
        .context("no embedding model: run `twin models import models/all-MiniLM-L6-v2` first")?;
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let docs = rust_docs()?;
    let spec = twin_core::bench::LibraryBench {
        tree: tree.clone().unwrap_or_else(|| docs.clone()),
        subset: subset.clone().unwrap_or_else(|| docs.join("book")),
        search_sizes: sizes.clone(),
        queries: *queries,
        model: PathBuf::from(model.path),
        threads: cli
            .threads
            .unwrap_or_else(twin_core::engine::default_threads),
        scratch: scratch.path().to_path_buf(),
        parts: only.clone(),
    };
    let bar = progress_bar::Bar::new(!cli.json);
    let rows = twin_core::bench::library(&spec, &bar)?;
    bar.finish();
    if cli.json {
        print_json(&rows)?;
    } else {
        print_table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Import(args) => import(cli, args),
        Command::Watch { paths, import } => watch_cmd(cli, paths, import),
        Command::Sources { remove } => sources(cli, remove.as_deref()),
        Command::Status { check } => status(cli, *check),
        Command::Search(args) => search(cli, args),
        Command::Models(cmd) => models_cmd::run(cli, cmd),
        Command::Draft(args) => draft_cmd::draft_cmd(cli, args),
        Command::Traces { command, limit } => draft_cmd::traces_cmd(cli, command, *limit),
        Command::Style(args) => draft_cmd::style_cmd(cli, args),
        Command::Dataset(cmd) => train_cmd::dataset_cmd(cli, cmd),
        Command::Train(args) => train_cmd::train_cmd(cli, args),
        Command::Adapters(cmd) => train_cmd::adapters_cmd(cli, cmd),
        Command::Eval(args) => eval_cmd::eval_cmd(cli, args),
        Command::Bench(cmd) => bench(cli, cmd),
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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
