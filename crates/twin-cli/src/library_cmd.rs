//! `twin import`, `twin watch`, `twin sources`, `twin status` and `twin search`: the library
//! from the terminal.

use crate::{
    cancel_on_ctrl_c, exit, open_library, print_json, progress_bar, provision, service, Cli,
};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use twin_core::autotrain::AutotrainEvent;
use twin_core::library::watch::WatchEvent;
use twin_core::store::SearchFilter;
use twin_core::{ImportOptions, ImportReport, SearchMode, SearchQuery};

#[derive(Args)]
pub struct ImportArgs {
    /// Files or folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    flags: ImportFlags,
    /// Do not prepare the next draft after an import that changed the library (its prompt
    /// head, ~2 s on 2 cores with the default model): for scripts that import and never draft.
    #[arg(long, env = "TWIN_NO_PROMPT_HEAD", value_parser = clap::builder::FalseyValueParser::new())]
    no_prompt_head: bool,
}

#[derive(Args, Clone)]
pub struct ImportFlags {
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
    /// Options for an import; the service adds the user's remembered names to `--author`'s.
    fn options(&self) -> ImportOptions {
        ImportOptions {
            max_file_size: self.max_file_mib * 1024 * 1024,
            embed: !self.no_embed,
            authors: self.authors.clone(),
            include_drafts: self.include_drafts,
            include_pages: self.include_pages,
            ..Default::default()
        }
    }
}

#[derive(Args)]
pub struct SearchArgs {
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

pub fn import(cli: &Cli, args: &ImportArgs) -> Result<ExitCode> {
    let twin = service(cli)?;
    provision(cli, &twin)?;
    let bar = progress_bar::Bar::new(!cli.json);
    let cancel = cancel_on_ctrl_c();
    let report = twin.import(&args.paths, args.flags.options(), &bar, &cancel);
    bar.finish();
    let report = report?;
    if !cli.json {
        print_report(&report);
    }
    // The library changed, so the style card and exemplars every draft starts from may have:
    // evaluate that head now, while the user expects to wait, not at the first draft.
    let changed = report.added + report.updated + report.renamed + report.deleted > 0;
    if changed && !report.cancelled && !args.no_prompt_head {
        crate::draft_cmd::keep_prompt_heads(&twin, cli.json);
    }
    if cli.json {
        print_json(&report)?;
    }
    Ok(report_exit(&report))
}

pub fn watch_cmd(cli: &Cli, paths: &[PathBuf], flags: &ImportFlags) -> Result<ExitCode> {
    let twin = std::sync::Arc::new(service(cli)?);
    provision(cli, &twin)?;
    let cancel = cancel_on_ctrl_c();
    if !paths.is_empty() {
        let bar = progress_bar::Bar::new(!cli.json);
        let report = twin.import(paths, flags.options(), &bar, &cancel);
        bar.finish();
        if !cli.json {
            print_report(&report?);
        }
    }
    let mut library = twin.open_library()?;
    let options = ImportOptions {
        authors: library.add_user_names(&flags.authors)?,
        ..flags.options()
    };
    let sources = library.folders_to_watch(paths)?;
    anyhow::ensure!(
        !sources.is_empty(),
        "no folders to watch: import a folder first or name one"
    );
    let json = cli.json;
    // The twin keeps learning while the folders are followed (unless automation is off).
    let announced = std::sync::Mutex::new(None);
    twin.follow_autotrain(move |event| print_autotrain_event(json, &event, &announced));
    let watched = twin.watch(
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
            WatchEvent::Syncing(_) => {}
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
    );
    // Lets a running cycle record where it stopped (it resumes on the next start).
    twin.stop_autotrain();
    watched?;
    Ok(ExitCode::SUCCESS)
}

/// A training cycle's start, pause and end, one line each (progress stays quiet: `twin
/// autotrain status` shows it). `announced` is the cycle whose start was printed.
fn print_autotrain_event(json: bool, event: &AutotrainEvent, announced: &Mutex<Option<i64>>) {
    match event {
        AutotrainEvent::Progress {
            cycle, documents, ..
        } => {
            let Ok(mut last) = announced.lock() else {
                return;
            };
            if *last != Some(*cycle) {
                *last = Some(*cycle);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"event": "autotrain", "detail": event})
                    );
                } else {
                    println!(
                        "training cycle {cycle}: learning from {documents} new or edited documents"
                    );
                }
            }
        }
        _ if json => println!(
            "{}",
            serde_json::json!({"event": "autotrain", "detail": event})
        ),
        AutotrainEvent::Paused { cycle } => {
            println!("training cycle {cycle} waits while you work")
        }
        AutotrainEvent::Finished { cycle } => {
            println!("{}", crate::autotrain_cmd::summary(cycle))
        }
    }
}

pub fn sources(cli: &Cli, remove: Option<&str>) -> Result<ExitCode> {
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

pub fn status(cli: &Cli, check: bool) -> Result<ExitCode> {
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

pub fn search(cli: &Cli, args: &SearchArgs) -> Result<ExitCode> {
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
