//! `twin bench …`: the benchmark tables (see `twin_core::bench`).

use crate::{draft_cmd, open_library, print_json, progress_bar, service, train_cmd, Cli};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum BenchCommand {
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
    let twin = service(cli)?;
    let library = twin.open_library()?;
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
        config: twin.chat_config(&model.choice())?,
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

pub fn bench(cli: &Cli, cmd: &BenchCommand) -> Result<ExitCode> {
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
